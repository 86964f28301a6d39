import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Synchronization
import Testing

/// The apply path on real files in a temp directory, with an in-memory reloader that can be told to fail.
@Suite("Failover applier")
struct FailoverApplierTests {
    final class Reloader: RuntimeReloading {
        let failing: Set<RuntimeKind>
        let calls = Mutex<[RuntimeKind]>([])
        init(failing: Set<RuntimeKind> = []) { self.failing = failing }
        func reload(_ runtime: RuntimeKind, mode: AgentConfig.Docker.Reload) throws(RuntimeConfigError) {
            calls.withLock { $0.append(runtime) }
            if failing.contains(runtime) { throw RuntimeConfigError(path: "test", message: "reload refused") }
        }
    }

    struct Host {
        let dir = NSTemporaryDirectory() + "rw-apply-\(UUID().uuidString)"
        var daemonJSON: String { dir + "/daemon.json" }
        var certsDir: String { dir + "/certs.d" }
        var registriesConf: String { dir + "/registries.conf" }

        let daemonText = """
        {
          "log-driver": "journald",
          "registry-mirrors": ["https://mirror-a:5000", "https://mirror-b:5000"],
          "proxies": {"https-proxy": "http://proxy:3128"},
          "storage-driver": "overlay2"
        }

        """
        let registriesText = """
        unqualified-search-registries = ["docker.io"]

        [[registry]]
        prefix = "docker.io"
        location = "registry-1.docker.io"

        [[registry.mirror]]
        location = "mirror-a:5000"

        """

        init() throws {
            try FileManager.default.createDirectory(atPath: dir + "/certs.d/docker.io", withIntermediateDirectories: true)
            try daemonText.write(toFile: daemonJSON, atomically: true, encoding: .utf8)
            try registriesText.write(toFile: registriesConf, atomically: true, encoding: .utf8)
        }

        var config: AgentConfig {
            try! AgentConfig.parse(ConfigNode.parse("""
            host: {id: node-a1}
            aggregator: {insecure: true}
            registries:
              - name: docker.io
                mirrors: ["https://mirror-a:5000", {url: "https://mirror-b:5000", trusted: true}]
            runtime:
              docker: {daemonJSON: \(daemonJSON), reload: signal}
              containerd: {certsDir: \(certsDir)}
              crio: {registriesConf: \(registriesConf), reload: signal}
            """, file: "agent.yaml"))
        }

        func contents() -> [String: Data] {
            var out: [String: Data] = [:]
            for path in [daemonJSON, registriesConf, certsDir + "/docker.io/hosts.toml"] { out[path] = FileManager.default.contents(atPath: path) }
            return out
        }
    }

    let directive = FailoverDirective(generation: 9, issuedAt: Date(), expiresAt: Date().addingTimeInterval(600), target: "node-a1",
                                      mirrors: ["docker.io": ["https://mirror-b:5000"]], reason: "endpoint_down https://mirror-a:5000")

    @Test("all three runtimes switched: daemon.json keeps its other keys, hosts.toml and registries.conf read back, reloads done, backups kept")
    func applies() async throws {
        let host = try Host()
        let reloader = Reloader()
        let applier = FailoverApplier(config: host.config, reloader: reloader, dockerMirrors: { ["https://mirror-b:5000"] })
        let outcome = await applier.apply(directive)
        #expect(outcome.applied, "\(outcome.detail)")
        let daemon = try String(contentsOfFile: host.daemonJSON, encoding: .utf8)
        #expect(daemon == host.daemonText.replacingOccurrences(of: #"["https://mirror-a:5000", "https://mirror-b:5000"]"#, with: #"["https://mirror-b:5000"]"#))
        #expect(try String(contentsOfFile: host.daemonJSON + ".regwatch-backup", encoding: .utf8) == host.daemonText)
        let hosts = try ContainerdHosts.parse(try String(contentsOfFile: host.certsDir + "/docker.io/hosts.toml", encoding: .utf8), registry: "docker.io", path: "x")
        #expect(hosts.hosts.map(\.url) == ["https://mirror-b:5000"])
        #expect(hosts.hosts.first?.capabilities == ["pull", "resolve"])
        let crio = try CRIORegistries.parse(try String(contentsOfFile: host.registriesConf, encoding: .utf8), path: "x")
        #expect(crio.entry(for: "docker.io/library/alpine")?.mirrors.map(\.location) == ["mirror-b:5000"])
        #expect(Set(reloader.calls.withLock { $0 }) == [.docker, .crio])
    }

    @Test("a reload that fails rolls every file back byte for byte and reloads again")
    func reloadFailure() async throws {
        let host = try Host()
        let before = host.contents()
        let reloader = Reloader(failing: [.docker])
        let outcome = await FailoverApplier(config: host.config, reloader: reloader, dockerMirrors: nil).apply(directive)
        #expect(!outcome.applied)
        #expect(outcome.detail.first?.contains("docker reload failed") == true, "\(outcome.detail)")
        #expect(host.contents() == before)
    }

    @Test("dockerd not taking the new mirrors is a failure: files restored")
    func verifyFailure() async throws {
        let host = try Host()
        let before = host.contents()
        let outcome = await FailoverApplier(config: host.config, reloader: Reloader(), dockerMirrors: { ["https://mirror-a:5000"] }, verifyAttempts: 2).apply(directive)
        #expect(!outcome.applied)
        #expect(outcome.detail.first?.contains("dockerd uses") == true, "\(outcome.detail)")
        #expect(host.contents() == before)
    }

    @Test("reload: none writes daemon.json without reloading or verifying dockerd (the operator reloads)")
    func reloadNone() async throws {
        let host = try Host()
        var config = host.config
        config.runtime.docker?.reload = .none
        let reloader = Reloader()
        let outcome = await FailoverApplier(config: config, reloader: reloader, dockerMirrors: { ["https://mirror-a:5000"] }, verifyAttempts: 2).apply(directive)
        #expect(outcome.applied, "\(outcome.detail)")
        #expect(outcome.detail.contains { $0.contains("dockerd not reloaded") }, "\(outcome.detail)")
        #expect(!reloader.calls.withLock { $0 }.contains(.docker))
        #expect(try DockerDaemonConfig.parse([UInt8](host.contents()[host.daemonJSON]!), path: host.daemonJSON).mirrors == ["https://mirror-b:5000"])
    }

    @Test("an unparseable daemon.json is never overwritten and nothing else is written either")
    func brokenFile() async throws {
        let host = try Host()
        try "{\"log-driver\": \"journald\",}".write(toFile: host.daemonJSON, atomically: true, encoding: .utf8)
        let before = host.contents()
        let reloader = Reloader()
        let outcome = await FailoverApplier(config: host.config, reloader: reloader, dockerMirrors: nil).apply(directive)
        #expect(!outcome.applied)
        #expect(outcome.detail.first?.hasPrefix("nothing written") == true)
        #expect(host.contents() == before)
        #expect(reloader.calls.withLock { $0 }.isEmpty)
    }
}
