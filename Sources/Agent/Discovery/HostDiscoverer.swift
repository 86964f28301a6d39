import FoundationEssentials
import RegwatchShared

/// Builds a host's view of its registries from the files its runtimes already use, so `check` and
/// `diagnose` work with no config file: Docker's `daemon.json` and systemd drop-ins, containerd's
/// `config.toml` and `hosts.toml` files, CRI-O/podman `registries.conf` and its drop-ins, k3s/RKE2
/// `registries.yaml`, the credentials files and helpers those runtimes use, and proxy settings.
///
/// Every path is a host path read under ``root``. A broken or unreadable file is a finding, never a
/// reason to stop: the operator asked what is wrong, and a broken file is often the answer.
public struct HostDiscoverer: Sendable {
    public var root: HostRoot
    public var environment: [String: String]
    public var helpers: any CredentialHelperRunning
    public var helperTimeout: Duration
    /// `--registry NAME[=URL]`.
    public var extraRegistries: [RegistryArgument]
    /// `diagnose IMAGE` adds the image's registry.
    public var imageRegistry: String?
    public var hostID: String
    /// Asks a running dockerd (its socket under the root) for the mirrors it really uses; nil: files only.
    public var engine: (any HTTPTransport)?

    public init(root: HostRoot, environment: [String: String], helpers: (any CredentialHelperRunning)? = nil, helperTimeout: Duration = .seconds(5),
                extraRegistries: [RegistryArgument] = [], imageRegistry: String? = nil, hostID: String,
                engine: (any HTTPTransport)? = nil) {
        self.engine = engine
        self.root = root
        self.environment = environment
        self.helpers = helpers ?? ProcessCredentialHelper(searchPath: Self.helperSearchPath(root: root, environment: environment))
        self.helperTimeout = helperTimeout
        self.extraRegistries = extraRegistries
        self.imageRegistry = imageRegistry
        self.hostID = hostID
    }

    /// Where helpers are looked for: the agent's `PATH` on its own host, the usual directories under a host root.
    public static func helperSearchPath(root: HostRoot, environment: [String: String]) -> [String] {
        if root.isHost {
            return (environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":").map(String.init)
        }
        return ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(root.resolve)
    }

    enum Paths {
        static let daemonJSON = "/etc/docker/daemon.json"
        static let dockerSocket = "/var/run/docker.sock"
        static let dockerPid = "/var/run/docker.pid"
        static let containerdConfig = "/etc/containerd/config.toml"
        static let containerdSocket = "/run/containerd/containerd.sock"
        static let registriesConf = "/etc/containers/registries.conf"
        /// Highest precedence first.
        static let dropInRoots = ["/etc/systemd/system", "/run/systemd/system"]
        static let k3s: [(name: String, registries: String, certs: String)] = [
            ("k3s", "/etc/rancher/k3s/registries.yaml", "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"),
            ("rke2", "/etc/rancher/rke2/registries.yaml", "/var/lib/rancher/rke2/agent/etc/containerd/certs.d"),
        ]
    }

    /// Facts gathered so far; mutated by each reader in turn.
    struct State {
        var findings: [HostDiscovery.Finding] = []
        var named: [String] = []
        var mirrors: [String: [MirrorSpec]] = [:]
        var logins: [String: DockerClientConfig.Login] = [:]
        var helperFor: [String: (name: String, source: String)] = [:]
        var defaultHelper: (name: String, source: String)?
        var insecureHosts: Set<String> = []
        var proxies: [ProxySetting] = []

        mutating func note(_ kind: HostDiscovery.Finding.Kind, _ subject: String, _ detail: String, _ source: String) {
            findings.append(.init(kind: kind, subject: subject, detail: detail, source: source))
        }

        mutating func name(_ registry: String) {
            if RegistryName.isValid(registry), !named.contains(registry) { named.append(registry) }
        }

        mutating func addMirror(_ registry: String, _ raw: String, insecure: Bool = false) {
            let url = raw.contains("://") ? raw : "https://\(raw)"
            let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
            guard URLRules.isHTTPURL(trimmed), !(mirrors[registry] ?? []).contains(where: { $0.url == trimmed }) else { return }
            let host = URL(string: trimmed)?.host.map { h in URL(string: trimmed)?.port.map { "\(h):\($0)" } ?? h } ?? ""
            mirrors[registry, default: []].append(MirrorSpec(url: trimmed, insecure: insecure || trimmed.hasPrefix("http://") || insecureHosts.contains(host)))
            name(registry)
        }
    }

    public func discover() async -> HostDiscovery {
        var s = State()
        s.name("docker.io")
        var runtime = AgentConfig.Runtime()
        runtime.root = root
        await readDocker(&s, &runtime)
        readContainerd(&s, &runtime)
        readContainers(&s, &runtime)
        readCredentials(&s)
        for r in extraRegistries { s.name(r.name); s.note(.registry, r.name, "added by hand" + (r.upstream.map { ": \($0)" } ?? ""), "--registry") }
        if let imageRegistry { s.name(imageRegistry) }
        if let env = ProxySetting(environment: environment, owner: "environment", source: "environment") {
            s.note(.proxy, "environment", env.shown, "environment")
        }
        let registries = ["docker.io"] + s.named.filter { $0 != "docker.io" }.sorted()
        await askHelpers(&s, registries: registries)
        if runtime.docker == nil && runtime.containerd == nil && runtime.crio == nil {
            s.note(.runtime, "none", "no Docker, containerd, CRI-O or k3s configuration found: checking Docker Hub directly", root.description)
        }

        var config = AgentConfig(
            host: HostIdentity(id: hostID, labels: [:]),
            aggregator: .init(endpoints: ["tcp://127.0.0.1:7450"], serverKey: nil, clientKey: nil, signingKey: nil, insecure: true),
            interval: .seconds(30), stateDir: root.path("/var/lib/regwatch"), registries: [], runtime: runtime, transport: TransportLimits())
        for name in registries {
            let upstream = extraRegistries.first { $0.name == name }?.upstream
                ?? AgentConfig.Registry.defaultUpstream(name)
            var mirrors = (s.mirrors[name] ?? []).filter { $0.url != upstream }
            for i in mirrors.indices {
                let host = URL(string: mirrors[i].url).flatMap { u in u.host.map { h in u.port.map { "\(h):\($0)" } ?? h } } ?? ""
                mirrors[i].authenticated = s.logins[host] != nil
            }
            config.registries.append(AgentConfig.Registry(name: name, upstream: upstream, probeImage: nil, rateLimit: name == "docker.io",
                                                          credentials: nil, mirrors: mirrors))
        }
        let usable = DockerCredentials(logins: s.logins)
        let credentials = usable.auths.isEmpty ? nil : usable
        // The runtime that pulls decides the proxy: dockerd's, else containerd's; else curl reads the environment.
        let proxy = s.proxies.first
        return HostDiscovery(root: root.description, findings: s.findings, registries: registries, proxy: proxy, config: config, credentials: credentials)
    }

    // MARK: - files

    func read(_ hostPath: String) -> [UInt8]? { root.contents(atPath: root.path(hostPath)) }
    func exists(_ hostPath: String) -> Bool { root.fileExists(atPath: root.path(hostPath)) }
    func isDirectory(_ hostPath: String) -> Bool { root.isDirectory(atPath: root.path(hostPath)) }
    func list(_ hostPath: String) -> [String] { root.contentsOfDirectory(atPath: root.path(hostPath)) ?? [] }

    /// `Environment=` of a unit's drop-ins as systemd applies them: one file per name (`/etc` over
    /// `/run`), all in name order, later assignments winning; with the last file that set anything.
    func unitEnvironment(_ unit: String) -> (env: [String: String], source: String)? {
        var byName: [String: String] = [:]
        for dir in Paths.dropInRoots.reversed().map({ "\($0)/\(unit).service.d" }) {
            for file in list(dir) where file.hasSuffix(".conf") { byName[file] = "\(dir)/\(file)" }
        }
        var env: [String: String] = [:]
        var source: String?
        for name in byName.keys.sorted() {
            guard let path = byName[name], let bytes = read(path) else { continue }
            let before = env
            env = SystemdEnvironment.parse(String(decoding: bytes, as: UTF8.self), onto: env)
            if env != before { source = path }
        }
        return source.map { (env, $0) }
    }

    // MARK: - Docker

    func readDocker(_ s: inout State, _ runtime: inout AgentConfig.Runtime) async {
        let hasFile = exists(Paths.daemonJSON), hasSocket = exists(Paths.dockerSocket)
        let dropIn = unitEnvironment("docker")
        guard hasFile || hasSocket || dropIn != nil else { return }
        runtime.docker = .init(daemonJSON: root.resolve(Paths.daemonJSON), socket: root.resolve(Paths.dockerSocket), reload: .none, pidFile: root.resolve(Paths.dockerPid))
        s.note(.runtime, "docker", hasSocket ? "dockerd is running (its socket answers for the mirrors it really uses)" : "dockerd is configured (no socket: not running)",
               hasSocket ? Paths.dockerSocket : (hasFile ? Paths.daemonJSON : dropIn!.source))
        var daemonProxy: ProxySetting?
        var effective: [String]?
        if hasSocket, let engine {
            do {
                effective = try await DockerEngine(socket: root.resolve(Paths.dockerSocket), runner: engine).effectiveMirrors()
            } catch {
                s.note(.problem, "docker", root.shown("\(error)") + ": dockerd does not answer, pulls through Docker fail", Paths.dockerSocket)
            }
        }
        if hasFile {
            if let bytes = read(Paths.daemonJSON) {
                do {
                    let c = try DockerDaemonConfig.parse(bytes, path: Paths.daemonJSON)
                    for host in c.insecureRegistries {
                        s.insecureHosts.insert(host)
                        s.name(host)
                    }
                    if !c.insecureRegistries.isEmpty {
                        s.note(.insecure, "docker", "insecure-registries: \(c.insecureRegistries.joined(separator: ", ")) (plain http or unverified TLS allowed)", Paths.daemonJSON)
                    }
                    s.note(.mirrors, "docker.io", c.mirrors.isEmpty ? "no registry-mirrors: Docker Hub pulls go straight to registry-1.docker.io"
                           : "registry-mirrors \(c.mirrors.joined(separator: ", ")), tried in order, then registry-1.docker.io", Paths.daemonJSON)
                    if let effective, effective != c.mirrors {
                        s.note(.problem, "docker", "dockerd uses [\(effective.joined(separator: ", "))] but \(Paths.daemonJSON) says [\(c.mirrors.joined(separator: ", "))]: "
                               + "a reload is pending or failed; pulls use dockerd's list", Paths.dockerSocket)
                    }
                    for m in effective ?? c.mirrors { s.addMirror("docker.io", m) }
                    if c.httpProxy != nil || c.httpsProxy != nil {
                        daemonProxy = ProxySetting(http: c.httpProxy, https: c.httpsProxy, noProxy: c.noProxy, owner: "dockerd", source: Paths.daemonJSON)
                    }
                } catch {
                    s.note(.problem, "docker", "\(error.description): dockerd will not start or reload with it", Paths.daemonJSON)
                    for m in effective ?? [] { s.addMirror("docker.io", m) }
                }
            } else {
                s.note(.problem, "docker", "\(Paths.daemonJSON) cannot be read", Paths.daemonJSON)
            }
        }
        if !hasFile { for m in effective ?? [] { s.addMirror("docker.io", m) } }
        if daemonProxy == nil, let dropIn, let p = ProxySetting(environment: dropIn.env, owner: "dockerd", source: dropIn.source) { daemonProxy = p }
        if let daemonProxy {
            s.proxies.append(daemonProxy)
            s.note(.proxy, "docker", "dockerd pulls through \(daemonProxy.shown)", daemonProxy.source)
        }
    }

    // MARK: - containerd and k3s/RKE2

    func readContainerd(_ s: inout State, _ runtime: inout AgentConfig.Runtime) {
        var certsDirs: [String] = []
        if exists(Paths.containerdConfig) {
            if let bytes = read(Paths.containerdConfig) {
                do {
                    let c = try ContainerdConfig.parse(String(decoding: bytes, as: UTF8.self), path: Paths.containerdConfig)
                    let dirs = c.configPath ?? ContainerdConfig.defaultConfigPath
                    certsDirs += dirs.split(separator: ":").map(String.init)
                    s.note(.runtime, "containerd", "hosts.toml files in \(dirs)" + (c.configPath == nil ? " (the default: config_path is not set)" : " (config_path)"), Paths.containerdConfig)
                    for (registry, endpoints) in c.legacyMirrors.sorted(by: { $0.key < $1.key }) {
                        endpoints.forEach { s.addMirror(registry, $0) }
                        s.note(.mirrors, registry, "registry.mirrors (deprecated inline form): \(endpoints.joined(separator: ", "))", Paths.containerdConfig)
                    }
                } catch {
                    certsDirs.append(ContainerdConfig.defaultConfigPath)
                    s.note(.problem, "containerd", "\(error.description): containerd will not start with it", Paths.containerdConfig)
                }
            } else {
                certsDirs.append(ContainerdConfig.defaultConfigPath)
                s.note(.problem, "containerd", "\(Paths.containerdConfig) cannot be read: reading the default \(ContainerdConfig.defaultConfigPath)", Paths.containerdConfig)
            }
        } else if exists(Paths.containerdSocket) || isDirectory(ContainerdConfig.defaultConfigPath) {
            certsDirs.append(ContainerdConfig.defaultConfigPath)
            s.note(.runtime, "containerd", "no config.toml: hosts.toml files in the default \(ContainerdConfig.defaultConfigPath)",
                   exists(Paths.containerdSocket) ? Paths.containerdSocket : ContainerdConfig.defaultConfigPath)
        }
        for k in Paths.k3s where exists(k.registries) || isDirectory(k.certs) {
            if isDirectory(k.certs) { certsDirs.append(k.certs) }
            s.note(.runtime, k.name, "\(k.name)'s containerd: hosts.toml files in \(k.certs), written by \(k.name) from \(k.registries) at start",
                   exists(k.registries) ? k.registries : k.certs)
            guard let bytes = read(k.registries) else { continue }
            do {
                let r = try K3sRegistries.parse(String(decoding: bytes, as: UTF8.self), path: k.registries)
                for (host, c) in r.configs where c.insecureSkipVerify { s.insecureHosts.insert(host) }
                for m in r.mirrors {
                    m.endpoints.forEach { s.addMirror(m.registry, $0) }
                    s.name(m.registry)
                    s.note(.mirrors, m.registry, m.endpoints.isEmpty ? "mirror entry without endpoints: pulls go to the registry itself"
                           : "endpoints \(m.endpoints.joined(separator: ", ")), tried in order, then the registry itself", k.registries)
                }
                for (host, c) in r.configs.sorted(by: { $0.key < $1.key }) {
                    if let user = c.username, let secret = c.secret, s.logins[host] == nil {
                        s.logins[host] = .init(username: user, secret: secret)
                        s.note(.credentials, host, "user \(user)", k.registries)
                    }
                    if c.insecureSkipVerify { s.note(.insecure, host, "tls.insecure_skip_verify: certificate not verified", k.registries) }
                    if let ca = c.caFile { s.note(.registry, host, "tls.ca_file \(ca)", k.registries) }
                    s.name(host)
                }
            } catch {
                s.note(.problem, k.name, "\(error.description): \(k.name) will not start with it", k.registries)
            }
        }
        guard !certsDirs.isEmpty else { return }
        var unique: [String] = []
        for d in certsDirs where !unique.contains(d) { unique.append(d) }
        runtime.containerd = .init(certsDir: unique.map(root.resolve).joined(separator: ":"))
        for dir in unique {
            for name in list(dir) {
                let path = "\(dir)/\(name)/hosts.toml"
                guard let bytes = read(path) else { continue }
                let registry = ContainerdHosts.registry(forDirectory: name)
                do {
                    let hosts = try ContainerdHosts.parse(String(decoding: bytes, as: UTF8.self), registry: registry, path: path)
                    for h in hosts.hosts where h.capabilities.contains("pull") { s.addMirror(registry, h.url, insecure: h.skipVerify) }
                    s.name(registry)
                    s.note(.mirrors, registry, hosts.pullMirrors.isEmpty ? "no pull hosts: pulls go to \(hosts.server ?? registry)"
                           : "hosts \(hosts.pullMirrors.joined(separator: ", ")), tried in order, then \(hosts.server ?? registry)", path)
                } catch {
                    s.note(.problem, registry, "\(error.description): containerd ignores this file and pulls without its mirrors", path)
                }
            }
        }
        if let dropIn = unitEnvironment("containerd"), let p = ProxySetting(environment: dropIn.env, owner: "containerd", source: dropIn.source) {
            s.proxies.append(p)
            s.note(.proxy, "containerd", "containerd pulls through \(p.shown)", p.source)
        }
    }

    // MARK: - CRI-O, podman, skopeo

    func readContainers(_ s: inout State, _ runtime: inout AgentConfig.Runtime) {
        let dropInDir = Paths.registriesConf + ".d"
        let files = (exists(Paths.registriesConf) ? [Paths.registriesConf] : []) + list(dropInDir).filter { $0.hasSuffix(".conf") }.map { "\(dropInDir)/\($0)" }
        guard !files.isEmpty else { return }
        runtime.crio = .init(registriesConf: root.resolve(Paths.registriesConf), reload: .none)
        s.note(.runtime, "crio", "CRI-O/podman registries: \(files.count) file\(files.count == 1 ? "" : "s")", files[0])
        var parsed: [(file: String, conf: CRIORegistries)] = []
        for file in files {
            guard let bytes = read(file) else { continue }
            do { parsed.append((file, try CRIORegistries.parse(String(decoding: bytes, as: UTF8.self), path: file))) } catch {
                s.note(.problem, "crio", "\(error.description): CRI-O and podman refuse this file", file)
            }
        }
        var merged = CRIORegistries(unqualifiedSearchRegistries: [], registries: [])
        for (i, p) in parsed.enumerated() {
            merged.merge(p.conf)
            if !p.conf.unqualifiedSearchRegistries.isEmpty {
                p.conf.unqualifiedSearchRegistries.forEach { s.name($0) }
                s.note(.registry, "search", "unqualified-search-registries: \(p.conf.unqualifiedSearchRegistries.joined(separator: ", "))", p.file)
            }
            for r in p.conf.registries {
                let registry = String(r.prefix.split(separator: "/").first ?? "")
                s.name(registry)
                if !r.location.isEmpty { s.name(String(r.location.split(separator: "/").first ?? "")) }
                var detail = r.mirrors.isEmpty ? "no mirrors" : "mirrors \(r.mirrors.map(\.location).joined(separator: ", ")), tried in order, then \(r.location.isEmpty ? r.prefix : r.location)"
                if r.blocked { detail = "blocked: pulls are refused" }
                if r.insecure { detail += "; insecure" }
                if let later = parsed[(i + 1)...].last(where: { $0.conf.registries.contains { $0.prefix == r.prefix } }) {
                    detail += " (replaced by \(later.file))"
                }
                s.note(r.blocked ? .problem : .mirrors, r.prefix, detail, p.file)
            }
        }
        for r in merged.registries {
            let registry = String(r.prefix.split(separator: "/").first ?? "")
            if r.insecure { s.insecureHosts.insert(registry) }
            if r.prefix == registry { r.mirrors.forEach { s.addMirror(registry, $0.location, insecure: $0.insecure) } }
        }
    }

    // MARK: - credentials

    func readCredentials(_ s: inout State) {
        var files = ["/root/.docker/config.json"]
        if let dir = environment["DOCKER_CONFIG"], dir.hasPrefix("/") { files.append("\(dir)/config.json") }
        if let file = environment["REGISTRY_AUTH_FILE"], file.hasPrefix("/") { files.append(file) }
        files += ["/run/containers/0/auth.json", "/root/.config/containers/auth.json", "/var/lib/kubelet/config.json"]
        var seen: Set<String> = []
        for file in files where seen.insert(file).inserted {
            guard let bytes = read(file) else { continue }
            let config: DockerClientConfig
            do { config = try DockerClientConfig.parse(bytes, path: file) } catch {
                s.note(.problem, "credentials", error.description, file)
                continue
            }
            for (key, login) in config.logins.sorted(by: { $0.key < $1.key }) {
                let registry = DockerClientConfig.registry(forKey: key)
                s.name(registry)
                if s.logins[registry] == nil {
                    s.logins[registry] = login
                    s.note(.credentials, registry, login.isIdentityToken ? "an identity token (probes of it run anonymously)" : "user \(login.username)", file)
                } else {
                    s.note(.credentials, registry, "user \(login.username) (not used: an earlier file has credentials for it)", file)
                }
            }
            for (key, helper) in config.credHelpers.sorted(by: { $0.key < $1.key }) {
                let registry = DockerClientConfig.registry(forKey: key)
                s.name(registry)
                if s.helperFor[registry] == nil { s.helperFor[registry] = (helper, file) }
            }
            if let store = config.credsStore, s.defaultHelper == nil { s.defaultHelper = (store, file) }
        }
    }

    /// Asks each registry's helper (its `credHelpers` entry, else `credsStore`) when no file has
    /// credentials for it; all at once, each with the timeout, so one hanging helper costs one timeout.
    func askHelpers(_ s: inout State, registries: [String]) async {
        let asks: [(registry: String, helper: String, source: String)] = registries.compactMap { r in
            guard s.logins[r] == nil, let h = s.helperFor[r] ?? s.defaultHelper else { return nil }
            return (r, h.name, h.source)
        }
        guard !asks.isEmpty else { return }
        let helpers = self.helpers, timeout = helperTimeout
        let outcomes = await withTaskGroup(of: (Int, CredentialHelper.Outcome).self) { group in
            for (i, a) in asks.enumerated() {
                group.addTask { (i, await helpers.get(helper: a.helper, serverURL: DockerClientConfig.serverURL(forRegistry: a.registry), timeout: timeout)) }
            }
            var out = [CredentialHelper.Outcome?](repeating: nil, count: asks.count)
            for await (i, o) in group { out[i] = o }
            return out
        }
        for (a, outcome) in zip(asks, outcomes) {
            let name = "docker-credential-\(a.helper)"
            switch outcome ?? .failed("no answer") {
            case .found(let user, let secret):
                // Docker's convention: the user `<token>` means the secret is an identity token.
                let token = user == "<token>"
                s.logins[a.registry] = .init(username: token ? "(identity token)" : user, secret: secret, isIdentityToken: token)
                s.note(.credentials, a.registry, token ? "an identity token, from \(name) (probes of it run anonymously)" : "user \(user), from \(name)", a.source)
            case .none:
                s.note(.helper, a.registry, "\(name) has no credentials for it: pulls are anonymous", a.source)
            case .missing(let why):
                s.note(.problem, a.registry, "\(why): the runtime cannot get credentials for it and pulls fail or go anonymous", a.source)
            case .timedOut:
                s.note(.problem, a.registry, "\(name) did not answer within \(DecimalText.fixed(helperTimeout.seconds, places: 0)) s: pulls that need it hang or fail", a.source)
            case .failed(let why):
                s.note(.problem, a.registry, "\(name) failed (\(why)): pulls are anonymous or fail", a.source)
            }
        }
    }
}
