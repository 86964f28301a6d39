import Foundation
import RegwatchTestSupport
import Testing

/// A real dockerd (Debian `docker.io`) in a network namespace: what `check` reports is what the daemon
/// actually uses (`GET /info`), and a daemon.json edited without a reload shows as drift.
@Suite("dockerd effective mirrors", .serialized, .ownThread, .tags(.root))
struct DockerEngineTests {
    @Test("check reads dockerd's effective mirrors; an unreloaded edit is drift; SIGHUP makes them agree")
    func effectiveMirrors() throws {
        let h = RegistryHarness("dockerd")
        let d = h.dir
        let ns = try DockerNamespace(h)
        defer { ns.tearDown() }
        func daemonJSON(_ mirrors: [String]) throws {
            let list = mirrors.map { "\"\($0)\"" }.joined(separator: ", ")
            try #"{"registry-mirrors": [\#(list)], "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none"}"#
                .write(toFile: "\(d)/daemon.json", atomically: false, encoding: .utf8)
        }
        try daemonJSON(["http://127.0.0.1:15301"])
        try ns.startDockerd()

        try """
        host: {id: node-docker}
        aggregator: {insecure: true}
        runtime:
          docker: {daemonJSON: \(d)/daemon.json, socket: \(d)/docker.sock, reload: none}
        """.write(toFile: "\(d)/agent.yaml", atomically: true, encoding: .utf8)
        func dockerState() throws -> [String: Any] {
            let (_, out) = try RegistryHarness.spawnAndWait(CLI.binary("regwatch-agent"), ["check", "--config", "\(d)/agent.yaml", "--json"])
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
            return try #require((doc["runtime"] as? [String: Any])?["docker"] as? [String: Any], "\(out)")
        }
        let first = try dockerState()
        #expect(first["valid"] as? Bool == true)
        #expect(first["detail"] as? String == "dockerd uses these mirrors")

        try daemonJSON(["http://127.0.0.1:15302"])
        let drift = try dockerState()
        #expect(drift["valid"] as? Bool == false)
        #expect((drift["detail"] as? String)?.contains("dockerd uses [http://127.0.0.1:15301]") == true, "\(drift)")

        let pid = try String(contentsOfFile: "\(d)/dockerd.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try h.run("/bin/kill", ["-HUP", pid])
        var agreed = false
        for _ in 0..<50 where !agreed {
            agreed = (try dockerState()["detail"] as? String) == "dockerd uses these mirrors"
            if !agreed { usleep(100_000) }
        }
        #expect(agreed)
    }
}
