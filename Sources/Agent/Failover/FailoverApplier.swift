import FoundationEssentials
import Glibc
import RegwatchShared

/// Reloads a runtime after its mirror configuration changed. The real implementation signals the
/// daemon or asks systemd; tests use an in-memory one.
public protocol RuntimeReloading: Sendable {
    func reload(_ runtime: RuntimeKind, mode: AgentConfig.Docker.Reload) throws(RuntimeConfigError)
}

/// Applies an accepted ``FailoverDirective`` to every runtime this host manages, all or nothing.
///
/// Every new file content is computed (and read back) before the first write, so a directive that
/// cannot be expressed in some file writes nothing. Then each file is replaced atomically (temp file in
/// the same directory, fsync, rename, fsync the directory) after its previous content is saved next to
/// it as `*.regwatch-backup`; the runtimes are reloaded and the result verified (dockerd's effective
/// mirrors through `GET /info`; the files parsed back). Any failure restores every file that was
/// written, reloads again and reports what happened, so a runtime is never left half-switched.
public struct FailoverApplier: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var applied: Bool
        /// One line per runtime: what was written and verified, or why not.
        public var detail: [String]
    }

    /// One file to replace.
    struct Write: Equatable {
        var runtime: RuntimeKind
        var path: String
        var old: [UInt8]?
        var new: [UInt8]
    }

    let config: AgentConfig
    let reloader: any RuntimeReloading
    /// dockerd's effective mirrors (`GET /info`), nil when Docker is not verified (no socket).
    let dockerMirrors: (@Sendable () async throws -> [String])?
    /// How long dockerd gets to pick up a reload, in 250 ms polls of `GET /info`.
    let verifyAttempts: Int

    public init(config: AgentConfig, reloader: any RuntimeReloading, dockerMirrors: (@Sendable () async throws -> [String])?, verifyAttempts: Int = 20) {
        self.config = config
        self.reloader = reloader
        self.dockerMirrors = dockerMirrors
        self.verifyAttempts = max(1, verifyAttempts)
    }

    public func apply(_ directive: FailoverDirective) async -> Outcome {
        let writes: [Write]
        do {
            writes = try plan(directive)
        } catch {
            return Outcome(applied: false, detail: ["nothing written: \(error)"])
        }
        let originals = OriginalFiles(stateDir: config.stateDir, root: config.hostRoot)
        for w in writes {
            AtomicFile.removeLeftovers(of: w.path)
            AtomicFile.removeLeftovers(of: w.path + ".regwatch-backup")
            do { try originals.keep(w.runtime, realPath: w.path, content: w.old) } catch {
                return Outcome(applied: false, detail: ["nothing written: \(error)"])
            }
        }
        var done: [Write] = []
        for w in writes {
            do {
                if let old = w.old { try AtomicFile.write(old, to: w.path + ".regwatch-backup", mode: 0o600) }
                try AtomicFile.write(w.new, to: w.path, mode: filePermissions(w.path))
                done.append(w)
            } catch {
                return await rollBack(done, reason: "cannot write \(w.path): \(error)")
            }
        }
        var touched = Set(writes.map(\.runtime))
        // daemon.json may already hold the new list while dockerd runs the old one (an apply cut short
        // between the rename and the reload, or an operator's edit): reload and verify it all the same.
        if !touched.contains(.docker), reloadMode(.docker) != .none, let wanted = directive.mirrors["docker.io"], let dockerMirrors,
           (try? await dockerMirrors()) != wanted.map(DockerDaemonConfig.normalized) {
            touched.insert(.docker)
        }
        let runtimes = touched.sorted { $0.rawValue < $1.rawValue }
        for runtime in runtimes where reloadMode(runtime) != .none {
            Failpoint.hit("apply.before-reload")
            do {
                try reloader.reload(runtime, mode: reloadMode(runtime))
            } catch {
                return await rollBack(done, reason: "\(runtime.rawValue) reload failed: \(error)")
            }
        }
        // With `reload: none` the operator reloads dockerd: there is nothing to verify yet.
        if runtimes.contains(.docker), reloadMode(.docker) != .none, let wanted = directive.mirrors["docker.io"], let dockerMirrors {
            let expected = wanted.map(DockerDaemonConfig.normalized)
            var effective: [String] = []
            // dockerd applies a SIGHUP asynchronously: give it a moment before calling it a failure.
            for attempt in 0..<verifyAttempts {
                effective = (try? await dockerMirrors()) ?? []
                if effective == expected { break }
                if attempt < verifyAttempts - 1 { try? await Task.sleep(for: .milliseconds(250)) }
            }
            if effective != expected {
                return await rollBack(done, reason: "dockerd uses \(effective) after the reload, not \(expected)")
            }
        }
        Failpoint.hit("apply.after-verify")
        return Outcome(applied: true, detail: runtimes.map { r in
            let paths = writes.filter { $0.runtime == r }.map(\.path)
            return "\(r.rawValue): " + (paths.isEmpty ? "file already current" : paths.joined(separator: ", "))
                + (r != .docker ? " (read back)" : reloadMode(.docker) == .none ? " (reload: none, dockerd not reloaded)" : dockerMirrors != nil ? " (dockerd verified)" : " (read back)")
        })
    }

    /// A drop-in in `registries.conf.d` with the same prefix replaces the main file's entry: a new order
    /// written to the main file would not take effect, so the command fails before anything is written.
    static func refuseOverridingDropIns(_ registriesConf: String, registries: [String]) throws(RuntimeConfigError) {
        let dir = registriesConf + ".d"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where name.hasSuffix(".conf") {
            let path = "\(dir)/\(name)"
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let dropIn = try CRIORegistries.parse(String(decoding: data, as: UTF8.self), path: path)
            if let hit = dropIn.registries.first(where: { registries.contains($0.prefix) }) {
                throw RuntimeConfigError(path: path, message: "its [[registry]] \(hit.prefix) replaces the one in \(registriesConf): a new mirror order there would not take effect (move the entry into \(registriesConf))")
            }
        }
    }

    /// Every file's new content, computed and verified before anything is written.
    func plan(_ directive: FailoverDirective) throws -> [Write] {
        var writes: [Write] = []
        let registries = Dictionary(uniqueKeysWithValues: config.registries.map { ($0.name, $0) })
        if let docker = config.runtime.docker, let mirrors = directive.mirrors["docker.io"] {
            let old = FileManager.default.contents(atPath: docker.daemonJSON).map { [UInt8]($0) }
            let new = try DaemonJSONEditor.setMirrors(mirrors, in: old ?? [])
            if new != old { writes.append(Write(runtime: .docker, path: docker.daemonJSON, old: old, new: new)) }
        }
        if let containerd = config.runtime.containerd {
            for (name, mirrors) in directive.mirrors.sorted(by: { $0.key < $1.key }) {
                guard let registry = registries[name], let lexical = ContainerdHostsWriter.directory(certsDir: containerd.certsDir, registry: name) else {
                    throw RuntimeConfigError(path: containerd.certsDir, message: "registry \(name) cannot be written under certsDir")
                }
                // A link on the host below certsDir leads to the host's file, not the container's.
                let dir = config.hostRoot.contained(lexical) ?? lexical
                let specs = Dictionary(registry.mirrors.map { (CommandGate.normalise($0.url), $0) }, uniquingKeysWith: { a, _ in a })
                let path = dir + "/hosts.toml"
                let text = try ContainerdHostsWriter.renderVerified(
                    registry: name, server: registry.upstream,
                    mirrors: mirrors.map { url in
                        ContainerdHostsWriter.Mirror(url: url, trusted: specs[CommandGate.normalise(url)]?.trusted ?? false,
                                                     ca: registry.mirrorCAs[url] ?? registry.ca)
                    }, path: path)
                let old = FileManager.default.contents(atPath: path).map { [UInt8]($0) }
                if old != Array(text.utf8) {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    writes.append(Write(runtime: .containerd, path: path, old: old, new: Array(text.utf8)))
                }
            }
        }
        if let yamlPath = config.runtime.containerd?.registriesYAML {
            // k3s/RKE2: the same order in registries.yaml, or the next k3s start writes the old one back.
            let oldBytes = FileManager.default.contents(atPath: yamlPath).map { [UInt8]($0) }
            var text = oldBytes.map { String(decoding: $0, as: UTF8.self) } ?? ""
            for (name, mirrors) in directive.mirrors.sorted(by: { $0.key < $1.key }) where registries[name] != nil {
                text = try K3sRegistriesEditor.setMirrors(mirrors, registry: name, in: text, path: yamlPath)
            }
            if Array(text.utf8) != oldBytes { writes.append(Write(runtime: .containerd, path: yamlPath, old: oldBytes, new: Array(text.utf8))) }
        }
        if let crio = config.runtime.crio {
            let oldBytes = FileManager.default.contents(atPath: crio.registriesConf).map { [UInt8]($0) }
            var text = oldBytes.map { String(decoding: $0, as: UTF8.self) } ?? ""
            for (name, mirrors) in directive.mirrors.sorted(by: { $0.key < $1.key }) {
                guard let registry = registries[name] else { continue }
                let specs = Dictionary(registry.mirrors.map { (CommandGate.normalise($0.url), $0) }, uniquingKeysWith: { a, _ in a })
                text = try RegistriesConfEditor.setMirrors(
                    mirrors.map { RegistriesConfEditor.Mirror(url: $0, insecure: $0.hasPrefix("http://") || (specs[CommandGate.normalise($0)]?.insecure ?? false)) },
                    registry: name, upstream: registry.upstream, in: text, path: crio.registriesConf)
            }
            try Self.refuseOverridingDropIns(crio.registriesConf, registries: Array(directive.mirrors.keys))
            if Array(text.utf8) != oldBytes { writes.append(Write(runtime: .crio, path: crio.registriesConf, old: oldBytes, new: Array(text.utf8))) }
        }
        return writes
    }

    /// Restores every written file (or removes a file that did not exist), reloads, and reports.
    func rollBack(_ done: [Write], reason: String) async -> Outcome {
        var detail = ["rolled back: \(reason)"]
        for w in done.reversed() {
            do {
                if let old = w.old {
                    try AtomicFile.write(old, to: w.path, mode: filePermissions(w.path))
                } else {
                    try FileManager.default.removeItem(atPath: w.path)
                }
            } catch {
                detail.append("could not restore \(w.path): \(error); its previous content is in \(w.path).regwatch-backup")
            }
        }
        for runtime in Set(done.map(\.runtime)) where reloadMode(runtime) != .none {
            do { try reloader.reload(runtime, mode: reloadMode(runtime)) } catch {
                detail.append("\(runtime.rawValue) reload after restore failed: \(error)")
            }
        }
        return Outcome(applied: false, detail: detail)
    }

    func reloadMode(_ runtime: RuntimeKind) -> AgentConfig.Docker.Reload {
        switch runtime {
        case .docker: config.runtime.docker?.reload ?? .none
        case .crio: config.runtime.crio?.reload ?? .none
        case .containerd: .none  // containerd reads hosts.toml on every pull
        }
    }

    func filePermissions(_ path: String) -> mode_t {
        // registries.yaml may hold registry passwords: a new one is private.
        let fresh: mode_t = path == config.runtime.containerd?.registriesYAML ? 0o600 : 0o644
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path), let p = attrs[.posixPermissions] as? Int else { return fresh }
        return mode_t(p)
    }
}
