import Crypto
import Foundation
import RegwatchAgent
import RegwatchShared
import Testing

/// The agent's writes with a host root: a signed failover applied by `failover apply --host-root`
/// lands in the host's files under the prefix (atomic writes, backups, the generation file), and
/// nothing outside it changes.
@Suite("host root: writes", .serialized)
struct HostRootRunTests {
    @Test("failover apply writes containerd's and CRI-O's files and the generation under the host root; messages name host paths")
    func failoverUnderHostRoot() throws {
        let dir = CLI.tempDir("hostroot-run")
        let root = "\(dir)/host"
        let key = Curve25519.Signing.PrivateKey()
        try FileManager.default.createDirectory(atPath: "\(dir)/secrets", withIntermediateDirectories: true)
        try KeyFiles.signingPublicText(key.publicKey).write(toFile: "\(dir)/secrets/signing.pub", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(root)/etc/containers", withIntermediateDirectories: true)
        try "unqualified-search-registries = [\"docker.io\"]\n".write(toFile: "\(root)/etc/containers/registries.conf", atomically: true, encoding: .utf8)
        try """
        host: {id: node-h1}
        aggregator: {insecure: true, signingKey: \(dir)/secrets/signing.pub}
        registries:
          - name: docker.io
            upstream: http://127.0.0.1:1
            mirrors: [{url: "http://127.0.0.1:2", insecure: true}, {url: "http://127.0.0.1:3", insecure: true}]
        runtime:
          containerd: {}
          crio: {reload: none}
        """.write(toFile: "\(dir)/agent.yaml", atomically: true, encoding: .utf8)
        let realConf = FileManager.default.contents(atPath: "/etc/containers/registries.conf")
        let realState = FileManager.default.fileExists(atPath: "/var/lib/regwatch")

        let now = Date()
        let command = try CommandSigner(key: key).sign(FailoverDirective(
            generation: 1, issuedAt: now, expiresAt: now.addingTimeInterval(600), target: "node-h1",
            mirrors: ["docker.io": ["http://127.0.0.1:3", "http://127.0.0.1:2"]], reason: "host root test"))
        try JSONCoding.encoder().encode(command).write(to: URL(fileURLWithPath: "\(dir)/command.json"))
        let r = try CLI.run("regwatch-agent", ["failover", "apply", "--config", "\(dir)/agent.yaml", "--host-root", root, "--command", "\(dir)/command.json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("/etc/containerd/certs.d/docker.io/hosts.toml"), "\(r.stdout)")
        #expect(!r.stdout.contains(root), "messages name host paths: \(r.stdout)")

        let hosts = try String(contentsOfFile: "\(root)/etc/containerd/certs.d/docker.io/hosts.toml", encoding: .utf8)
        #expect(try ContainerdHosts.parse(hosts, registry: "docker.io", path: "h").pullMirrors == ["http://127.0.0.1:3", "http://127.0.0.1:2"])
        let conf = try String(contentsOfFile: "\(root)/etc/containers/registries.conf", encoding: .utf8)
        #expect(try CRIORegistries.parse(conf, path: "r").entry(for: "docker.io/library/alpine")?.mirrors.map(\.location) == ["127.0.0.1:3", "127.0.0.1:2"])
        #expect(try AppliedGenerationFile(stateDir: "\(root)/var/lib/regwatch").read() == 1)
        #expect(FileManager.default.fileExists(atPath: "\(root)/etc/containers/registries.conf.regwatch-backup"))
        let leftovers = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(FileManager.default.contents(atPath: "/etc/containers/registries.conf") == realConf, "the real /etc was written")
        #expect(FileManager.default.fileExists(atPath: "/var/lib/regwatch") == realState)

        let status = try CLI.run("regwatch-agent", ["failover", "status", "--config", "\(dir)/agent.yaml", "--host-root", root])
        #expect(status.status == 0)
        #expect(status.stdout.hasPrefix("applied generation 1 (/var/lib/regwatch/applied-generation)"), "\(status.stdout)")

        // A drop-in that replaces docker.io's entry would silently win over the main file: refused, nothing written.
        try FileManager.default.createDirectory(atPath: "\(root)/etc/containers/registries.conf.d", withIntermediateDirectories: true)
        try "[[registry]]\nprefix = \"docker.io\"\nlocation = \"registry-1.docker.io\"\n".write(
            toFile: "\(root)/etc/containers/registries.conf.d/50-hub.conf", atomically: true, encoding: .utf8)
        let second = try CommandSigner(key: key).sign(FailoverDirective(
            generation: 2, issuedAt: now, expiresAt: now.addingTimeInterval(600), target: "node-h1",
            mirrors: ["docker.io": ["http://127.0.0.1:2", "http://127.0.0.1:3"]], reason: "host root test, overridden"))
        try JSONCoding.encoder().encode(second).write(to: URL(fileURLWithPath: "\(dir)/command.json"))
        let refused = try CLI.run("regwatch-agent", ["failover", "apply", "--config", "\(dir)/agent.yaml", "--host-root", root, "--command", "\(dir)/command.json"])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("/etc/containers/registries.conf.d/50-hub.conf: its [[registry]] docker.io replaces the one in /etc/containers/registries.conf"), "\(refused.stdout)")
        #expect(try String(contentsOfFile: "\(root)/etc/containers/registries.conf", encoding: .utf8) == conf)
        #expect(try String(contentsOfFile: "\(root)/etc/containerd/certs.d/docker.io/hosts.toml", encoding: .utf8) == hosts)
        #expect(try AppliedGenerationFile(stateDir: "\(root)/var/lib/regwatch").read() == 1)

        // Uninstall: the files go back to what they were before regwatch's first change.
        let originalConf = "unqualified-search-registries = [\"docker.io\"]\n"
        try FileManager.default.removeItem(atPath: "\(root)/etc/containers/registries.conf.d/50-hub.conf")
        let restore = try CLI.run("regwatch-agent", ["restore", "--config", "\(dir)/agent.yaml", "--host-root", root])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        #expect(restore.stdout == """
            removed /etc/containerd/certs.d/docker.io/hosts.toml (containerd; it did not exist before regwatch)
            restored /etc/containers/registries.conf (crio)

            """, "\(restore.stdout)")
        #expect(try String(contentsOfFile: "\(root)/etc/containers/registries.conf", encoding: .utf8) == originalConf)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/containerd/certs.d/docker.io"))
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/containers/registries.conf.regwatch-backup"))
        let again = try CLI.run("regwatch-agent", ["restore", "--config", "\(dir)/agent.yaml", "--host-root", root])
        #expect(again.status == 0 && again.stdout == "nothing to restore: regwatch changed no runtime file here\n", "\(again.stdout)")

        // health reads the cycle loop's heartbeat under the host root.
        let stale = try CLI.run("regwatch-agent", ["health", "--config", "\(dir)/agent.yaml", "--host-root", root])
        #expect(stale.status == 1 && stale.stdout == "unhealthy: no check cycle has finished yet\n", "\(stale.stdout)")
        try "\(RFC3339.format(Date()))\n".write(toFile: "\(root)/var/lib/regwatch/last-cycle", atomically: true, encoding: .utf8)
        let fresh = try CLI.run("regwatch-agent", ["health", "--config", "\(dir)/agent.yaml", "--host-root", root])
        #expect(fresh.status == 0 && fresh.stdout.hasPrefix("healthy: last check cycle finished"), "\(fresh.stdout)")
    }
}
