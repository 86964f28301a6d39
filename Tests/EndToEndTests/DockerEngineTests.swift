import Foundation
import RegwatchTestSupport
import Testing

/// A real dockerd (Debian `docker.io`) in a network namespace: what `check` reports is what the daemon
/// actually uses (`GET /info`), and a daemon.json edited without a reload shows as drift.
@Suite("dockerd effective mirrors", .serialized)
struct DockerEngineTests {
    @Test("check reads dockerd's effective mirrors; an unreloaded edit is drift; SIGHUP makes them agree")
    func effectiveMirrors() throws {
        let ns = "rw-d\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
        let h = RegistryHarness("dockerd")
        let d = h.dir
        try h.run("/usr/sbin/ip", ["netns", "add", ns])
        defer {
            _ = try? h.run("/usr/bin/pkill", ["-9", "-f", d])
            h.stopAll()
            _ = try? h.run("/usr/sbin/ip", ["netns", "del", ns])
        }
        try h.run("/usr/sbin/ip", ["-n", ns, "link", "set", "lo", "up"])
        func daemonJSON(_ mirrors: [String]) throws {
            let list = mirrors.map { "\"\($0)\"" }.joined(separator: ", ")
            try #"{"registry-mirrors": [\#(list)], "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none"}"#
                .write(toFile: "\(d)/daemon.json", atomically: false, encoding: .utf8)
        }
        try daemonJSON(["http://127.0.0.1:15301"])
        try h.start("/usr/bin/nsenter", ["--net=/run/netns/\(ns)", "/usr/sbin/dockerd", "--config-file", "\(d)/daemon.json", "--data-root", "\(d)/data",
                                         "--exec-root", "\(d)/exec", "--pidfile", "\(d)/dockerd.pid", "--host", "unix://\(d)/docker.sock"])
        var up = false
        for _ in 0..<150 where !up {
            up = (try? h.run("/usr/bin/curl", ["-sf", "--unix-socket", "\(d)/docker.sock", "http://localhost/_ping"])) == "OK"
            if !up { usleep(200_000) }
        }
        try #require(up, "dockerd did not come up")

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
