import FoundationEssentials
import RegwatchShared

extension AgentConfig {
    /// Where the host's files are: every host path below is already taken under it.
    public var hostRoot: HostRoot { runtime.root }

    /// The config with every host path the agent reads or writes taken under `root`: runtime configs,
    /// the Docker socket and pid file, credentials and CA files, log files, the state directory (the
    /// applied generation, the spool, a key the agent makes). The agent's own secrets named under
    /// `aggregator` are mounted into its container, not read from the host, and stay as given.
    /// Links that exist when the config is loaded are resolved inside the root (``HostRoot/resolve(_:)``).
    /// Applying it twice, or with the same root again, changes nothing.
    public func rooted(at root: HostRoot) -> AgentConfig {
        guard !root.isHost, runtime.root != root else { return self }
        precondition(runtime.root.isHost, "a config is rooted once")
        var c = self
        func p(_ path: String) -> String { root.resolve(path) }
        if let key = c.aggregator.clientKey, key == "\(stateDir)/\(KeyFiles.agentSecret)" { c.aggregator.clientKey = p(key) }
        c.stateDir = p(stateDir)
        for i in c.registries.indices {
            c.registries[i].credentials = c.registries[i].credentials.map(p)
            c.registries[i].ca = c.registries[i].ca.map(p)
            c.registries[i].mirrorCAs = c.registries[i].mirrorCAs.mapValues(p)
        }
        if var d = c.runtime.docker {
            d.daemonJSON = p(d.daemonJSON)
            d.socket = p(d.socket)
            d.pidFile = p(d.pidFile)
            c.runtime.docker = d
        }
        if let dirs = c.runtime.containerd?.certsDir {
            c.runtime.containerd!.certsDir = dirs.split(separator: ":").map { p(String($0)) }.joined(separator: ":")
            c.runtime.containerd!.registriesYAML = c.runtime.containerd!.registriesYAML.map(p)
        }
        if let file = c.runtime.crio?.registriesConf { c.runtime.crio!.registriesConf = p(file) }
        c.events.files = c.events.files.map(p)
        c.runtime.root = root
        return c
    }
}
