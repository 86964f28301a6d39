import ArgumentParser
import FoundationEssentials
import Glibc
import RegwatchAgent
import RegwatchCLI
import RegwatchShared

/// `--host-root DIR`: where the host's `/` is mounted when the agent runs in a container.
func parseHostRoot(_ dir: String?) throws -> HostRoot? {
    guard let dir else { return nil }
    guard let root = HostRoot(dir) else { throw ValidationError("--host-root: expected an absolute directory, got \"\(dir)\"") }
    guard root.isDirectory(atPath: dir) else { throw ValidationError("--host-root: \(dir) is not a directory") }
    return root
}

/// The options of `check` and `diagnose`, which also work with no config file at all.
struct HostOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Agent configuration file. Default: \(AgentConfig.defaultPath) when it exists; without one, the host's runtime, credentials and proxy files are read.", valueName: "file"))
    var config: String?
    @Option(name: .customLong("host-root"), help: ArgumentHelp("Where the host's / is mounted (an agent in a container): every host path is read under it.", valueName: "dir"))
    var hostRoot: String?
    @Option(name: .customLong("registry"), help: ArgumentHelp("Also check this registry, NAME or NAME=URL (repeatable).", valueName: "name[=url]"))
    var registries: [String] = []
    @Option(name: .customLong("helper-timeout"), help: "How long a credential helper may take before it is reported as hanging, e.g. 5s.")
    var helperTimeout = "5s"

    func validate() throws {
        for r in registries { if case .failure(let e) = RegistryArgument.parse(r) { throw ValidationError(e.message) } }
        guard let d = DurationText.parse(helperTimeout), d > .zero, d <= .seconds(120) else {
            throw ValidationError("--helper-timeout: expected a duration between 1ms and 120s, like 5s, got \"\(helperTimeout)\"")
        }
        _ = try parseHostRoot(hostRoot)
    }

    /// What the run works from: a config file, or what discovery found on the host.
    struct Setup {
        var config: AgentConfig
        var credentials: DockerCredentials?
        var proxy: ProxySetting?
        var discovery: HostDiscovery?
        var source: String
        /// Every credential known, to keep out of reports.
        var secrets: [String] {
            (credentials?.auths.values ?? [:].values).flatMap { auth -> [String] in
                guard let colon = auth.firstIndex(of: ":") else { return [auth] }
                return [String(auth[auth.index(after: colon)...]), Data(auth.utf8).base64EncodedString()]
            }
        }
    }

    /// `runner`: the command's one libcurl runner, which discovery also uses to ask dockerd.
    func setup(imageRegistry: String? = nil, runner: CurlMultiRunner) async throws -> Setup {
        let root = try parseHostRoot(hostRoot)
        let extra = registries.compactMap { try? RegistryArgument.parse($0).get() }
        let path = config ?? (access(AgentConfig.defaultPath, F_OK) == 0 ? AgentConfig.defaultPath : nil)
        if let path {
            var c = try AgentConfig.load(path, hostRoot: root)
            for r in extra where !c.registries.contains(where: { $0.name == r.name }) { c.registries.append(r.registry) }
            return Setup(config: c, credentials: try CheckCycle.loadCredentials(c), source: path)
        }
        let hostRoot = root ?? HostRoot()
        let discovery = await HostDiscoverer(
            root: hostRoot, environment: ProcessInfo.processInfo.environment, helperTimeout: DurationText.parse(helperTimeout)!,
            extraRegistries: extra, imageRegistry: imageRegistry, hostID: Self.hostID(hostRoot),
            engine: runner
        ).discover()
        return Setup(config: discovery.config, credentials: discovery.credentials, proxy: discovery.proxy, discovery: discovery,
                     source: "discovered on this host" + (hostRoot.isHost ? "" : " under \(hostRoot)"))
    }

    /// The host's name: its `/etc/hostname` under a host root, else this machine's.
    static func hostID(_ root: HostRoot) -> String {
        var name = ProcessInfo.processInfo.hostName
        if !root.isHost, let bytes = root.contents(atPath: root.path("/etc/hostname")) {
            name = String(decoding: bytes, as: UTF8.self).trimmed()
        }
        if let dot = name.firstIndex(of: "."), !HostID.isValid(name) { name = String(name[..<dot]) }
        return HostID.isValid(name) ? name : "localhost"
    }
}

/// The discovery as the tables show it: what was found and where, before the results.
func formatDiscovery(_ d: HostDiscovery) -> String {
    var out = "no config file: discovered on this host" + (d.root == "/" ? "" : " under \(d.root)") + "\n\n"
    out += formatTable(["FOUND", "ABOUT", "WHAT", "SOURCE"], d.findings.map { f in
        [f.kind == .problem ? "PROBLEM" : f.kind.rawValue, f.subject, f.detail, f.source]
    })
    out += "\n\nregistries checked: \(d.registries.joined(separator: ", "))"
    if let p = d.proxy { out += "\nprobes go through \(p.owner)'s proxy: \(p.shown)" }
    return out + "\n"
}
