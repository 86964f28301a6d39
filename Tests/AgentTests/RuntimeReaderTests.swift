import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

/// Runtime configuration files as operators write them (golden fixtures in `Fixtures/runtime`).
@Suite("Runtime config readers")
struct RuntimeReaderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/runtime").path

    func bytes(_ rel: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(rel)")))
    }

    func text(_ rel: String) throws -> String {
        try String(contentsOfFile: "\(Self.fixtures)/\(rel)", encoding: .utf8)
    }

    @Test("daemon.json: mirrors (normalised), insecure registries, proxies; other keys ignored")
    func dockerValid() throws {
        let c = try DockerDaemonConfig.parse(bytes("docker/daemon.json"), path: "daemon.json")
        #expect(c.mirrors == ["https://mirror-a:5000", "https://mirror-b:5000"])
        #expect(c.insecureRegistries == ["mirror-c:5000", "10.0.0.0/8"])
        #expect(c.httpsProxy == "http://proxy.corp:3128")
        #expect(c.noProxy == "localhost,127.0.0.1")
        #expect(try DockerDaemonConfig.parse(bytes("docker/empty.json"), path: "e.json") == DockerDaemonConfig(mirrors: [], insecureRegistries: []))
    }

    @Test("daemon.json that does not parse: config_invalid with line and column")
    func dockerBroken() throws {
        let input = try bytes("docker/trailing-comma.json")
        do {
            _ = try DockerDaemonConfig.parse(input, path: "daemon.json")
            Issue.record("parsed")
        } catch {
            // Go rejects the trailing comma where the closing bracket follows it (line 4, column 3).
            #expect(error.description == "daemon.json:4:3: not valid JSON: invalid character ']' looking for beginning of value")
        }
    }

    @Test("strict JSON: what Go's encoding/json accepts, and only that", arguments: [
        (#"{"a": [1, 2.5e-3, -0, true, null, "x\u00e9\n"]}"#, true),
        ("{}", true), (" [ ] ", true),
        (#"{"a": 1,}"#, false), (#"{"a": 01}"#, false), (#"{'a': 1}"#, false), (#"{"a": 1} x"#, false),
        (#"{"a": "\x"}"#, false), ("{\"a\": \"tab\tin\"}", false), (#"{"a": .5}"#, false), (#"{"a": NaN}"#, false), ("", false),
    ])
    func strictJSON(_ input: String, _ valid: Bool) {
        #expect((StrictJSON.check(Array(input.utf8)) == nil) == valid)
    }

    @Test("mirror values dockerd refuses are reported in dockerd's words")
    func dockerBadMirrors() throws {
        #expect(throws: RuntimeConfigError(path: "d.json", message: "invalid mirror: no scheme specified for \"mirror-a:5000\": must use either 'https://' or 'http://'")) {
            try DockerDaemonConfig.parse(bytes("docker/no-scheme.json"), path: "d.json")
        }
        #expect(throws: RuntimeConfigError(path: "d.json", message: "invalid mirror: path not allowed in URI \"https://mirror-a:5000/v2/\"")) {
            try DockerDaemonConfig.parse(bytes("docker/with-path.json"), path: "d.json")
        }
    }

    @Test("hosts.toml: hosts in file order with capabilities, ca, skip_verify; pull mirrors exclude push-only hosts")
    func containerdValid() throws {
        let h = try ContainerdHosts.parse(text("containerd/certs.d/docker.io/hosts.toml"), registry: "docker.io", path: "hosts.toml")
        #expect(h.server == "https://registry-1.docker.io")
        #expect(h.hosts.map(\.url) == ["https://mirror-b:5000", "https://mirror-a:5000", "https://push-only:5000"])
        #expect(h.hosts[1].capabilities == ["pull", "resolve"])
        #expect(h.hosts[1].ca == ["/etc/containerd/certs.d/docker.io/mirror-a.crt"])
        #expect(h.pullMirrors == ["https://mirror-b:5000", "https://mirror-a:5000"])
        let t = try ContainerdHosts.parse(text("containerd/certs.d/registry.test_5000_/hosts.toml"), registry: "registry.test:5000", path: "x")
        #expect(t.hosts.first?.skipVerify == true)
        #expect(ContainerdHosts.registry(forDirectory: "registry.test_5000_") == "registry.test:5000")
        #expect(ContainerdHosts.registry(forDirectory: "docker.io") == "docker.io")
        #expect(ContainerdHosts.registry(forDirectory: "_default") == "_default")
    }

    @Test("a malformed hosts.toml (containerd would silently drop the mirrors) is invalid with its position")
    func containerdBroken() throws {
        let input = try text("containerd-broken/certs.d/docker.io/hosts.toml")
        do {
            _ = try ContainerdHosts.parse(input, registry: "docker.io", path: "hosts.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 4)
            #expect(error.description.hasPrefix("hosts.toml:4:"))
        }
    }

    @Test("registries.conf v2: prefixes, mirrors in order, longest prefix wins; v1 and broken files are refused")
    func crio() throws {
        let c = try CRIORegistries.parse(text("crio/registries.conf"), path: "registries.conf")
        #expect(c.unqualifiedSearchRegistries == ["docker.io"])
        #expect(c.registries.map(\.prefix) == ["docker.io", "docker.io/library", "quay.io"])
        #expect(c.registries[0].mirrors.map(\.location) == ["mirror-b:5000", "mirror-a:5000"])
        #expect(c.registries[0].mirrors[1].insecure)
        #expect(c.registries[0].mirrors[1].pullFromMirror == "digest-only")
        #expect(c.registries[2].blocked)
        #expect(c.entry(for: "docker.io/library/alpine:3.20")?.prefix == "docker.io/library")
        #expect(c.entry(for: "docker.io/test/app:1")?.prefix == "docker.io")
        #expect(c.entry(for: "ghcr.io/x/y:1") == nil)
        #expect(throws: RuntimeConfigError.self) { try CRIORegistries.parse(text("crio/v1.conf"), path: "v1.conf") }
        let broken = try text("crio/broken.conf")
        do { _ = try CRIORegistries.parse(broken, path: "broken.conf") } catch {
            #expect(error.line == 3)
        }
    }

    @Test("the reader turns each managed runtime into a report state; the hash ignores formatting, not mirrors")
    func reader() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-rt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.fixtures)/containerd/certs.d", toPath: "\(dir)/certs.d")
        try FileManager.default.copyItem(atPath: "\(Self.fixtures)/docker/daemon.json", toPath: "\(dir)/daemon.json")
        try FileManager.default.copyItem(atPath: "\(Self.fixtures)/crio/registries.conf", toPath: "\(dir)/registries.conf")
        let runtime = AgentConfig.Runtime(
            docker: .init(daemonJSON: "\(dir)/daemon.json", socket: "/nonexistent.sock", reload: .none),
            containerd: .init(certsDir: "\(dir)/certs.d"),
            crio: .init(registriesConf: "\(dir)/registries.conf", reload: .none)
        )
        let reader = RuntimeConfigReader(runtime: runtime)
        let states = reader.read()
        #expect(states.map(\.runtime) == [.docker, .containerd, .crio])
        #expect(states.allSatisfy { $0.valid })
        #expect(states[0].mirrors == ["docker.io": ["https://mirror-a:5000", "https://mirror-b:5000"]])
        #expect(states[1].mirrors == ["docker.io": ["https://mirror-b:5000", "https://mirror-a:5000"], "registry.test:5000": ["https://cache.test:5000"]])
        #expect(states[2].mirrors == ["docker.io": ["mirror-b:5000", "mirror-a:5000"], "docker.io/library": ["library-cache:5000/library"]])

        // Reformatting daemon.json and changing an unrelated key keeps the hash; reordering mirrors changes it.
        let before = states[0].hash
        try #"{"debug": true, "registry-mirrors": ["https://mirror-a:5000", "https://mirror-b:5000"], "insecure-registries": ["10.0.0.0/8", "mirror-c:5000"]}"#
            .write(toFile: "\(dir)/daemon.json", atomically: true, encoding: .utf8)
        #expect(reader.read()[0].hash == before)
        try #"{"registry-mirrors": ["https://mirror-b:5000", "https://mirror-a:5000"], "insecure-registries": ["10.0.0.0/8", "mirror-c:5000"]}"#
            .write(toFile: "\(dir)/daemon.json", atomically: true, encoding: .utf8)
        #expect(reader.read()[0].hash != before)

        // A broken file is a finding with its position, not an agent failure.
        try "{\"registry-mirrors\": [\n".write(toFile: "\(dir)/daemon.json", atomically: true, encoding: .utf8)
        let broken = reader.read()[0]
        #expect(!broken.valid)
        #expect(broken.detail.hasPrefix("\(dir)/daemon.json:"))
        // Absent files are not errors: the runtime simply has no mirrors.
        let absent = RuntimeConfigReader(runtime: .init(docker: .init(daemonJSON: "\(dir)/none.json", socket: "", reload: .none))).read()[0]
        #expect(absent.valid)
        #expect(absent.mirrors.isEmpty)
    }
}
