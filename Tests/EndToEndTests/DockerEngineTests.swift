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

    @Test("zero config under a host root whose /var/run links to /run: dockerd's own list is found through its socket, drift is a problem, diagnose follows dockerd's list")
    func hostRootDrift() throws {
        let h = RegistryHarness("dockerd-root")
        let root = "\(h.dir)/host"
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/etc/docker", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/run", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/var", withIntermediateDirectories: true)
        // As on a Debian host: an absolute link, which must lead to the host's /run, not the agent's.
        try fm.createSymbolicLink(atPath: "\(root)/var/run", withDestinationPath: "/run")
        func daemonJSON(_ mirror: String) throws {
            try #"{"registry-mirrors": ["\#(mirror)"], "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none"}"#
                .write(toFile: "\(root)/etc/docker/daemon.json", atomically: false, encoding: .utf8)
        }
        try daemonJSON("http://127.0.0.1:15301")
        let ns = try DockerNamespace(h, socket: "\(root)/run/docker.sock", daemonJSON: "\(root)/etc/docker/daemon.json")
        defer { ns.tearDown() }
        try ns.startDockerd()
        try daemonJSON("http://127.0.0.1:15302") // edited, not reloaded

        func agent(_ args: [String]) throws -> [String: Any] {
            let r = try CLI.runRaw("/usr/bin/nsenter", ["--net=/run/netns/\(ns.name)", CLI.binary("regwatch-agent")] + args + ["--host-root", root, "--json"])
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)\(r.stderr)")
        }
        let diagnosis = try agent(["diagnose", "test/app:1"])
        let findings = (diagnosis["discovery"] as? [String: Any])?["findings"] as? [[String: Any]] ?? []
        let drift = try #require(findings.first { $0["kind"] as? String == "problem" && $0["subject"] as? String == "docker" }, "\(findings)")
        #expect(drift["detail"] as? String == "dockerd uses [http://127.0.0.1:15301] but /etc/docker/daemon.json says [http://127.0.0.1:15302]: a reload is pending or failed; pulls use dockerd's list")
        #expect(drift["source"] as? String == "/var/run/docker.sock")
        let steps = diagnosis["steps"] as? [[String: Any]] ?? []
        #expect(steps.first?["endpoint"] as? String == "http://127.0.0.1:15301", "\(steps)")

        let check = try agent(["check"])
        let docker = (check["runtime"] as? [String: Any])?["docker"] as? [String: Any]
        #expect(docker?["valid"] as? Bool == false)
        #expect(docker?["detail"] as? String == "dockerd uses [http://127.0.0.1:15301] but /etc/docker/daemon.json says [http://127.0.0.1:15302]: reload pending or failed")
    }
}
