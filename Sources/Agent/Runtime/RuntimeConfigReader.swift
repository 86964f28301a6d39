import Crypto
import FoundationEssentials
import RegwatchShared

/// Reads the mirror configuration of every runtime the agent manages, each cycle, into report form.
///
/// A missing or broken file is a finding, not a failure of the agent: it becomes a state with
/// `valid: false` and a one-line `detail` naming the file, line and column.
public struct RuntimeConfigReader: Sendable {
    public let runtime: AgentConfig.Runtime
    /// Asks a running dockerd for the mirrors it really uses; nil: files only.
    let engine: DockerEngine?
    var root: HostRoot { runtime.root }

    public init(runtime: AgentConfig.Runtime, runner: (any HTTPTransport)? = nil) {
        self.runtime = runtime
        if let socket = runtime.docker?.socket, let runner, runtime.root.fileExists(atPath: socket) {
            engine = DockerEngine(socket: socket, runner: runner)
        } else {
            engine = nil
        }
    }

    /// The files, plus dockerd's effective mirrors when its socket answers: a difference means a reload
    /// is pending or failed (dockerd keeps the old list when the new file is bad).
    public func readWithEngine() async -> [RuntimeConfigState] {
        var states = read()
        guard let engine, let i = states.firstIndex(where: { $0.runtime == .docker }) else { return states }
        do {
            let effective = try await engine.effectiveMirrors()
            let configured = states[i].mirrors["docker.io"] ?? []
            if effective != configured {
                states[i].detail = "dockerd uses [\(effective.joined(separator: ", "))] but \(root.shown(runtime.docker!.daemonJSON)) says [\(configured.joined(separator: ", "))]: reload pending or failed"
                states[i].valid = false
            } else if states[i].detail.isEmpty {
                states[i].detail = "dockerd uses these mirrors"
            }
        } catch {
            states[i].detail += (states[i].detail.isEmpty ? "" : "; ") + root.shown("\(error)")
        }
        return states
    }

    /// The mirrors a pull would use now: the files, with dockerd's own list when its socket answers
    /// (dockerd keeps its old list when a reload fails, and pulls with that).
    public func readForPulls() async -> [RuntimeConfigState] {
        var states = read()
        guard let engine, let i = states.firstIndex(where: { $0.runtime == .docker }),
              let effective = try? await engine.effectiveMirrors() else { return states }
        states[i].mirrors = effective.isEmpty ? [:] : ["docker.io": effective]
        states[i].valid = true
        return states
    }

    public func read() -> [RuntimeConfigState] {
        var out: [RuntimeConfigState] = []
        if let docker = runtime.docker { out.append(readDocker(docker.daemonJSON)) }
        if let containerd = runtime.containerd { out.append(readContainerd(containerd.certsDir)) }
        if let crio = runtime.crio { out.append(readCRIO(crio.registriesConf)) }
        return out
    }

    func readDocker(_ path: String) -> RuntimeConfigState {
        guard let data = root.contents(atPath: path) else {
            // dockerd runs without a daemon.json: no mirrors, nothing wrong.
            if !root.fileExists(atPath: path) {
                return state(.docker, mirrors: [:], detail: "\(root.shown(path)) does not exist (no mirrors configured)")
            }
            return invalid(.docker, RuntimeConfigError(path: path, message: "cannot be read"))
        }
        do {
            let config = try DockerDaemonConfig.parse(data, path: path)
            return state(.docker, mirrors: config.mirrors.isEmpty ? [:] : ["docker.io": config.mirrors], extra: config.insecureRegistries.sorted())
        } catch {
            return invalid(.docker, error)
        }
    }

    /// `certsDir` may list several directories separated by `:` (containerd's `config_path`): the first
    /// one with a registry's `hosts.toml` decides for that registry.
    func readContainerd(_ certsDir: String) -> RuntimeConfigState {
        var mirrors: [String: [String]] = [:]
        var extra: [String] = []
        var seen = false
        for dir in certsDir.split(separator: ":").map(String.init) {
            guard let entries = root.contentsOfDirectory(atPath: dir) else { continue }
            seen = true
            for name in entries {
                let path = "\(dir)/\(name)/hosts.toml"
                let registry = ContainerdHosts.registry(forDirectory: name)
                guard mirrors[registry] == nil, let data = root.contents(atPath: path) else { continue }
                do {
                    let hosts = try ContainerdHosts.parse(String(decoding: data, as: UTF8.self), registry: registry, path: path)
                    mirrors[hosts.registry] = hosts.pullMirrors
                    extra += hosts.hosts.map { "\(hosts.registry) \($0.url) \($0.capabilities.joined(separator: ",")) skip_verify=\($0.skipVerify)" }
                    extra.append("\(hosts.registry) server=\(hosts.server ?? "-")")
                } catch {
                    return invalid(.containerd, error)
                }
            }
        }
        guard seen else {
            return state(.containerd, mirrors: [:], detail: "\(root.shown(certsDir)) does not exist (no hosts.toml files)")
        }
        return state(.containerd, mirrors: mirrors, extra: extra)
    }

    /// The file, then its drop-ins (`registries.conf.d/*.conf`, in name order) as containers-registries.conf.d(5)
    /// merges them: a drop-in's `[[registry]]` replaces the entry with the same prefix, its other keys win.
    func readCRIO(_ path: String) -> RuntimeConfigState {
        let dropInDir = path + ".d"
        let dropIns = (root.contentsOfDirectory(atPath: dropInDir) ?? []).filter { $0.hasSuffix(".conf") }.map { "\(dropInDir)/\($0)" }
        let main = root.contents(atPath: path)
        guard main != nil || !dropIns.isEmpty else {
            return state(.crio, mirrors: [:], detail: "\(root.shown(path)) does not exist (no mirrors configured)")
        }
        do throws(RuntimeConfigError) {
            var conf = CRIORegistries(unqualifiedSearchRegistries: [], registries: [])
            if let main { conf = try CRIORegistries.parse(String(decoding: main, as: UTF8.self), path: path) }
            for file in dropIns {
                guard let data = root.contents(atPath: file) else { continue }
                conf.merge(try CRIORegistries.parse(String(decoding: data, as: UTF8.self), path: file))
            }
            var mirrors: [String: [String]] = [:]
            for r in conf.registries where !r.mirrors.isEmpty { mirrors[r.prefix] = r.mirrors.map(\.location) }
            let extra = conf.registries.map { "\($0.prefix) location=\($0.location) insecure=\($0.insecure) blocked=\($0.blocked)" }
            return state(.crio, mirrors: mirrors, extra: extra)
        } catch {
            return invalid(.crio, error)
        }
    }

    private func state(_ kind: RuntimeKind, mirrors: [String: [String]], extra: [String] = [], detail: String = "") -> RuntimeConfigState {
        RuntimeConfigState(runtime: kind, mirrors: mirrors, valid: true, detail: detail, hash: Self.hash(mirrors: mirrors, extra: extra))
    }

    private func invalid(_ kind: RuntimeKind, _ error: RuntimeConfigError) -> RuntimeConfigState {
        RuntimeConfigState(runtime: kind, mirrors: [:], valid: false, detail: root.shown(error.description), hash: "")
    }

    /// A stable digest of what decides where images come from (not of the file's bytes: reformatting a
    /// file or changing an unrelated key is not drift).
    static func hash(mirrors: [String: [String]], extra: [String]) -> String {
        var text = ""
        for key in mirrors.keys.sorted() { text += "\(key)=\(mirrors[key]!.joined(separator: " "))\n" }
        for line in extra { text += "\(line)\n" }
        let digest = SHA256.hash(data: Data(text.utf8))
        return "sha256:" + digest.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
