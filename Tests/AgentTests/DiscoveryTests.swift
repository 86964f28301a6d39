import Foundation
@testable import RegwatchAgent
import RegwatchShared
import RegwatchTestSupport
import Testing

/// A credential helper that answers from a table, for discovery without processes.
struct ScriptedHelpers: CredentialHelperRunning {
    var answers: [String: CredentialHelper.Outcome]

    func get(helper: String, serverURL: String, timeout: Duration) async -> CredentialHelper.Outcome {
        answers["\(helper) \(serverURL)"] ?? answers[helper] ?? .missing("docker-credential-\(helper) is not installed")
    }
}

/// Discovery over a whole host tree (golden fixture `Fixtures/discovery/host`, read as a host root):
/// every runtime's files, credentials, helpers and proxies, each finding with its source.
@Suite("Host discovery")
struct DiscoveryTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/discovery").path
    static let host = "\(fixtures)/host"

    func discover(_ answers: [String: CredentialHelper.Outcome] = [:], extra: [(String, String?)] = [], image: String? = nil) async -> HostDiscovery {
        await HostDiscoverer(root: HostRoot(Self.host)!, environment: ["PATH": "/usr/bin"], helpers: ScriptedHelpers(answers: answers),
                             extraRegistries: extra.map { RegistryArgument(name: $0.0, upstream: $0.1) }, imageRegistry: image, hostID: "fixture-node").discover()
    }

    /// A temporary host root holding `files` (host path -> content).
    static func hostTree(_ files: [String: String]) throws -> String {
        let dir = NSTemporaryDirectory() + "rw-host-\(UUID().uuidString)"
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: dir + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: dir + path, atomically: true, encoding: .utf8)
        }
        return dir
    }

    static func lines(_ d: HostDiscovery) -> String {
        d.findings.map { "\($0.kind.rawValue) | \($0.subject) | \($0.detail) | \($0.source)" }.joined(separator: "\n") + "\n"
    }

    @Test("every file of the fixture host is found, with its source as the host names it (golden findings)")
    func golden() async throws {
        let d = await discover([
            "ecr-login 123456789012.dkr.ecr.eu-west-1.amazonaws.com": .found(username: "AWS", secret: "ecr-secret"),
            "pass": .none,
        ])
        let expected = try String(contentsOfFile: "\(Self.fixtures)/expected-findings.txt", encoding: .utf8)
        let actual = Self.lines(d)
        if actual != expected { try actual.write(toFile: "/tmp/rw-discovery-findings.txt", atomically: true, encoding: .utf8) }
        #expect(actual == expected, "actual findings in /tmp/rw-discovery-findings.txt")
        #expect(d.registries == ["docker.io", "10.1.2.3:5000", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "evil.example", "ghcr.io",
                                 "mirror.corp:5000", "quay.io", "registry.corp:5000"])
        let json = String(decoding: try JSONCoding.encoder().encode(d), as: UTF8.self)
        for secret in ["hub-password", "corp-password", "ghcr-token-value", "rke2-password", "proxy-password", "ecr-secret"] {
            #expect(!actual.contains(secret))
            #expect(!json.contains(secret))
        }
    }

    @Test("the made config: mirrors per registry from every runtime, in order, insecure where allowed, credentials merged, dockerd's proxy")
    func config() async throws {
        let d = await discover()
        let hub = try #require(d.config.registries.first { $0.name == "docker.io" })
        #expect(hub.upstream == "https://registry-1.docker.io")
        #expect(hub.mirrors.map(\.url) == ["https://mirror.corp:5000", "http://10.1.2.3:5000"])
        #expect(hub.mirrors.map(\.insecure) == [false, true])
        // rke2's registries.yaml has credentials for the mirror: probes send them.
        #expect(hub.mirrors.map(\.authenticated) == [true, false])
        #expect(d.config.registries.first { $0.name == "registry.corp:5000" }?.mirrors.map(\.url) == ["https://cache.corp:5000"])
        #expect(d.config.registries.first { $0.name == "quay.io" }?.mirrors.map { "\($0.url) \($0.insecure)" } == ["https://quay-mirror.corp:5000 true"])
        #expect(d.credentials?.lookup(registry: "docker.io") == "hubuser:hub-password")
        #expect(d.credentials?.lookup(registry: "registry.corp:5000") == "ci:corp-password")
        #expect(d.credentials?.lookup(registry: "mirror.corp:5000") == "rke2:rke2-password")
        #expect(d.proxy == ProxySetting(http: "http://proxyuser:proxy-password@proxy.corp:3128", https: "http://proxyuser:proxy-password@proxy.corp:3128",
                                        noProxy: "localhost,.corp,10.0.0.0/8", owner: "dockerd", source: "/etc/systemd/system/docker.service.d/http-proxy.conf"))
        // Paths in the config are real (under the root, links resolved inside it: the fixture's daemon.json
        // links to /srv/docker/daemon.json); the reader shows them as the host names them.
        #expect(d.config.runtime.docker?.daemonJSON == "\(Self.host)/srv/docker/daemon.json")
        #expect(d.config.runtime.containerd?.certsDir == "\(Self.host)/srv/hosts")
        let states = RuntimeConfigReader(runtime: d.config.runtime).read()
        #expect(states.map(\.runtime) == [.docker, .containerd, .crio])
        #expect(states.allSatisfy { $0.valid }, "\(states)")
        #expect(states[0].mirrors["docker.io"] == ["https://mirror.corp:5000", "http://10.1.2.3:5000"])
        #expect(states[1].mirrors == ["docker.io": ["https://mirror.corp:5000"], "registry.corp:5000": ["https://cache.corp:5000"]])
        #expect(states[2].mirrors == ["quay.io": ["quay-mirror.corp:5000"]])
    }

    @Test("--registry and the image's registry are checked too; a missing helper and a hanging one are findings, not failures")
    func extrasAndHelpers() async throws {
        let d = await discover(["ecr-login": .timedOut], extra: [("registry.by-hand:5000", "http://127.0.0.1:5000")], image: "ghcr.io")
        #expect(d.config.registries.first { $0.name == "registry.by-hand:5000" }?.upstream == "http://127.0.0.1:5000")
        let problems = d.findings.filter { $0.kind == .problem }.map(\.detail)
        #expect(problems.contains { $0.hasPrefix("docker-credential-ecr-login did not answer within 5 s") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("docker-credential-pass is not installed") }, "\(problems)")
    }

    @Test("an empty host root: Docker Hub only, said so")
    func emptyHost() async throws {
        let dir = NSTemporaryDirectory() + "rw-empty-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = await HostDiscoverer(root: HostRoot(dir)!, environment: [:], helpers: ScriptedHelpers(answers: [:]), hostID: "h").discover()
        #expect(d.registries == ["docker.io"])
        #expect(d.findings.map(\.kind) == [.runtime])
        #expect(d.findings.first?.subject == "none")
        #expect(d.config.runtime.docker == nil && d.config.runtime.containerd == nil && d.config.runtime.crio == nil)
    }

    @Test("systemd drop-ins as systemd applies them: /etc hides /run's file of the same name, all in name order")
    func dropInPrecedence() async throws {
        let dir = try Self.hostTree([
            "/etc/systemd/system/docker.service.d/10-proxy.conf": "[Service]\nEnvironment=HTTPS_PROXY=http://etc:1\n",
            "/run/systemd/system/docker.service.d/10-proxy.conf": "[Service]\nEnvironment=HTTPS_PROXY=http://run-hidden:1\n",
            "/run/systemd/system/docker.service.d/20-noproxy.conf": "[Service]\nEnvironment=NO_PROXY=.corp\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = await HostDiscoverer(root: HostRoot(dir)!, environment: [:], helpers: ScriptedHelpers(answers: [:]), hostID: "h").discover()
        #expect(d.proxy == ProxySetting(http: nil, https: "http://etc:1", noProxy: ".corp", owner: "dockerd", source: "/run/systemd/system/docker.service.d/20-noproxy.conf"))
    }

    @Test("broken files are findings naming file, line and what the runtime does with them")
    func brokenFiles() async throws {
        let dir = try Self.hostTree([
            "/etc/docker/daemon.json": "{\"registry-mirrors\": [\"mirror.corp\"]}",
            "/etc/containerd/config.toml": "version = 2\n[plugins\n",
            "/etc/rancher/k3s/registries.yaml": "mirrors:\n\tdocker.io: {}\n",
            "/root/.docker/config.json": "{\"auths\": {\"x.corp\": {\"auth\": \"not base64!\"}}}",
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = await HostDiscoverer(root: HostRoot(dir)!, environment: [:], helpers: ScriptedHelpers(answers: [:]), hostID: "h").discover()
        let problems = d.findings.filter { $0.kind == .problem }.map { "\($0.source): \($0.detail)" }
        #expect(problems.count == 4, "\(problems)")
        #expect(problems.contains("/etc/docker/daemon.json: /etc/docker/daemon.json: invalid mirror: no scheme specified for \"mirror.corp\": must use either 'https://' or 'http://': dockerd will not start or reload with it"), "\(problems)")
        #expect(problems.contains { $0.hasPrefix("/etc/containerd/config.toml: /etc/containerd/config.toml:2:") && $0.hasSuffix("containerd will not start with it") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("/etc/rancher/k3s/registries.yaml: /etc/rancher/k3s/registries.yaml:2:1:") }, "\(problems)")
        #expect(problems.contains("/root/.docker/config.json: /root/.docker/config.json: auths.x.corp.auth is not base64 of user:password"), "\(problems)")
        #expect(!problems.joined().contains(dir), "messages name host paths")
    }
}

@Suite("Host root")
struct HostRootTests {
    @Test("paths go under the prefix, .. cannot climb out, messages are shown as the host names them")
    func paths() throws {
        let root = try #require(HostRoot("/host/"))
        #expect(root.prefix == "/host")
        #expect(root.path("/etc/docker/daemon.json") == "/host/etc/docker/daemon.json")
        #expect(root.path("/../../etc/shadow") == "/host/etc/shadow")
        #expect(root.shown("/host/etc/docker/daemon.json:3:1: bad") == "/etc/docker/daemon.json:3:1: bad")
        #expect(root.shown("cannot write \"/host/etc/x\" under /srv/host/certs.d") == "cannot write \"/etc/x\" under /srv/host/certs.d")
        #expect(HostRoot("relative") == nil)
        #expect(HostRoot("/")!.isHost)
        #expect(HostRoot().path("/etc/x") == "/etc/x")
    }

    @Test("symbolic links resolve inside the root: an absolute link points at the host's file, never the container's")
    func symlinks() throws {
        let dir = NSTemporaryDirectory() + "rw-root-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(dir)/etc/docker", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(dir)/srv", withIntermediateDirectories: true)
        try "inside".write(toFile: "\(dir)/srv/daemon.json", atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: "\(dir)/etc/docker/daemon.json", withDestinationPath: "/srv/daemon.json")
        try fm.createSymbolicLink(atPath: "\(dir)/etc/hostname", withDestinationPath: "../../../../../etc/hostname")
        try fm.createSymbolicLink(atPath: "\(dir)/etc/loop", withDestinationPath: "/etc/loop")
        let root = try #require(HostRoot(dir))
        #expect(root.contents(atPath: root.path("/etc/docker/daemon.json")) == Array("inside".utf8))
        // The container's /etc/hostname exists; the host root has none: nothing is read.
        #expect(fm.fileExists(atPath: "/etc/hostname"))
        #expect(root.contents(atPath: root.path("/etc/hostname")) == nil)
        #expect(root.contents(atPath: root.path("/etc/loop")) == nil)
        #expect(root.contentsOfDirectory(atPath: root.path("/etc/docker")) == ["daemon.json"])
    }
}

@Suite("Discovery readers")
struct DiscoveryReaderTests {
    @Test("systemd Environment=: quoted words, several per line, later wins, only [Service], empty resets")
    func systemd() {
        let env = SystemdEnvironment.parse("""
            [Unit]
            Environment=IGNORED=1
            [Service]
            Environment="HTTP_PROXY=http://p:3128" 'NO_PROXY=a, b' PLAIN=x
            # Environment=COMMENTED=1
            Environment=PLAIN=y
            """)
        #expect(env == ["HTTP_PROXY": "http://p:3128", "NO_PROXY": "a, b", "PLAIN": "y"])
        #expect(SystemdEnvironment.parse("[Service]\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2\n") == ["B": "2"])
        // A later drop-in's empty Environment= resets what earlier files set.
        #expect(SystemdEnvironment.parse("[Service]\nEnvironment=\n", onto: ["A": "1"]) == [:])
    }

    @Test("containerd config.toml: config_path for version 2 and 3, unset, the legacy inline mirrors, a broken file")
    func containerd() throws {
        #expect(try ContainerdConfig.parse("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/a:/b\"\n", path: "c").configPath == "/a:/b")
        #expect(try ContainerdConfig.parse("version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/x\"\n", path: "c").configPath == "/x")
        #expect(try ContainerdConfig.parse("version = 2\n", path: "c").configPath == nil)
        let legacy = try ContainerdConfig.parse("""
            [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
              endpoint = ["https://m1", "https://m2"]
            """, path: "c")
        #expect(legacy.legacyMirrors == ["docker.io": ["https://m1", "https://m2"]])
        #expect(throws: RuntimeConfigError.self) { try ContainerdConfig.parse("[plugins\n", path: "c") }
    }

    @Test("k3s registries.yaml: mirrors in file order, auth from fields or base64, tls settings")
    func k3s() throws {
        let r = try K3sRegistries.parse("""
            mirrors:
              docker.io: {endpoint: ["https://a", "https://b"]}
              registry.corp: {}
            configs:
              registry.corp:
                auth: {auth: \(Data("u:p".utf8).base64EncodedString())}
                tls: {insecure_skip_verify: true}
            """, path: "r.yaml")
        #expect(r.mirrors.map(\.registry) == ["docker.io", "registry.corp"])
        #expect(r.mirrors.map(\.endpoints) == [["https://a", "https://b"], []])
        #expect(r.configs["registry.corp"] == .init(username: "u", secret: "p", caFile: nil, insecureSkipVerify: true))
        #expect(try K3sRegistries.parse("", path: "r").mirrors.isEmpty)
        #expect(throws: RuntimeConfigError.self) { try K3sRegistries.parse("mirrors:\n  docker.io: {endpoint: https://a}\n", path: "r") }
    }

    @Test("config.json keys name registries the way Docker does")
    func dockerKeys() {
        #expect(DockerClientConfig.registry(forKey: "https://index.docker.io/v1/") == "docker.io")
        #expect(DockerClientConfig.registry(forKey: "registry.corp:5000") == "registry.corp:5000")
        #expect(DockerClientConfig.registry(forKey: "https://ghcr.io/v2/") == "ghcr.io")
        #expect(DockerClientConfig.serverURL(forRegistry: "docker.io") == "https://index.docker.io/v1/")
    }

    @Test("proxies: the password never shown; NO_PROXY by host, domain, port and *")
    func proxy() {
        #expect(ProxySetting.redacted("http://u:secret@proxy:3128") == "http://u:***@proxy:3128")
        #expect(ProxySetting.redacted("http://proxy:3128") == "http://proxy:3128")
        #expect(ProxySetting.redacted("http://token@proxy:3128") == "http://token@proxy:3128")
        let p = ProxySetting(http: "http://p:1", https: "http://ps:1", noProxy: "localhost, .corp ,registry.local:5000,10.0.0.0/8", owner: "dockerd", source: "s")
        #expect(p.proxy(forHost: "registry-1.docker.io", scheme: "https") == "http://ps:1")
        #expect(p.proxy(forHost: "registry-1.docker.io", scheme: "http") == "http://p:1")
        #expect(p.proxy(forHost: "mirror.corp", scheme: "https") == nil)
        #expect(p.proxy(forHost: "corp", scheme: "https") == nil)
        #expect(p.proxy(forHost: "registry.local", scheme: "http") == nil)
        #expect(p.proxy(forHost: "10.1.2.3", scheme: "https") == nil)
        #expect(p.proxy(forHost: "11.1.2.3", scheme: "https") == "http://ps:1")
        // Loopback is never proxied (Go's rule), whatever NO_PROXY says.
        #expect(p.proxy(forHost: "127.0.0.1", scheme: "http") == nil)
        #expect(ProxySetting(http: nil, https: "http://p:1", noProxy: "*", owner: "o", source: "s").proxy(forHost: "x", scheme: "https") == nil)
        #expect(ProxySetting(http: nil, https: "http://p:1", noProxy: nil, owner: "o", source: "s").proxy(forHost: "x", scheme: "http") == nil)
        // HTTPS requests do not fall back to HTTP_PROXY (Go and curl do not).
        #expect(ProxySetting(http: "http://p:1", https: nil, noProxy: nil, owner: "o", source: "s").proxy(forHost: "x", scheme: "https") == nil)
    }

    @Test("registries.conf drop-ins: an entry with the same prefix is replaced, new ones added, the search list replaced when set")
    func crioMerge() throws {
        var main = try CRIORegistries.parse("unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n", path: "m")
        main.merge(try CRIORegistries.parse("[[registry]]\nprefix = \"quay.io\"\nlocation = \"q2\"\n[[registry]]\nlocation = \"new.io\"\n", path: "d1"))
        #expect(main.registries.map(\.location) == ["q2", "new.io"])
        #expect(main.unqualifiedSearchRegistries == ["docker.io"])
        main.merge(try CRIORegistries.parse("unqualified-search-registries = []\n", path: "d2"))
        #expect(main.unqualifiedSearchRegistries == [])
    }
}

/// The helper runner against real processes: an answer, a helper that closes its output but keeps
/// running, and one that hangs with a child; the timeout holds and nothing is left behind.
@Suite("Credential helper processes")
struct ProcessCredentialHelperTests {
    func helper(_ body: String) throws -> (dir: String, name: String) {
        let dir = NSTemporaryDirectory() + "rw-helpers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let name = "t\(UInt32.random(in: 0...UInt32.max))"
        try RegistryHarness.writeExecutable("#!/bin/sh\n\(body)\n", to: "\(dir)/docker-credential-\(name)")
        return (dir, name)
    }

    @Test("an answer is read; a helper that closes stdout and stays, or hangs with a child, is killed at the timeout")
    func processes() async throws {
        let good = try helper(#"read s; echo "{\"ServerURL\":\"$s\",\"Username\":\"u\",\"Secret\":\"s3\"}""#)
        let answered = await ProcessCredentialHelper(searchPath: [good.dir]).get(helper: good.name, serverURL: "r.io", timeout: .seconds(5))
        #expect(answered == .found(username: "u", secret: "s3"), "\(answered)")
        let none = try helper("echo 'credentials not found in native keychain' >&2; exit 1")
        #expect(await ProcessCredentialHelper(searchPath: [none.dir]).get(helper: none.name, serverURL: "r.io", timeout: .seconds(5)) == .none)
        for body in ["exec >&- 2>&-; sleep 30", "sleep 31 & wait"] {
            let h = try helper(body)
            let started = ContinuousClock.now
            let outcome = await ProcessCredentialHelper(searchPath: [h.dir]).get(helper: h.name, serverURL: "r.io", timeout: .seconds(2))
            #expect(outcome == .timedOut, "\(body): \(outcome)")
            #expect(ContinuousClock.now - started < .seconds(10), "\(body)")
        }
        #expect(await ProcessCredentialHelper(searchPath: [good.dir]).get(helper: "absent", serverURL: "r.io", timeout: .seconds(1)) ==
                .missing("docker-credential-absent is not installed (looked in \(good.dir))"))
    }
}
