import Foundation
import RegwatchTestSupport
import Testing

/// `regwatch-agent check` as an operator runs it, against real registries on loopback.
@Suite("check command", .serialized, .ownThread)
struct CheckCommandTests {
    @Test("healthy fleet view exits 0 with the contract JSON; a dead mirror and a broken daemon.json exit 1")
    func check() throws {
        let h = RegistryHarness("check")
        let up = try h.startRegistry(name: "up")
        try h.pushImage(port: up, repository: "test/app", tag: "1")
        let mirror = try h.startRegistry(name: "mirror", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(up)\"}")
        try #"{"registry-mirrors": ["http://127.0.0.1:\#(mirror)"], "log-level": "warn"}"#.write(toFile: "\(h.dir)/daemon.json", atomically: true, encoding: .utf8)
        let config = "\(h.dir)/agent.yaml"
        try """
        host: {id: node-a1, labels: {zone: z1}}
        aggregator: {insecure: true}
        registries:
          - name: docker.io
            upstream: http://127.0.0.1:\(up)
            probeImage: test/app:1
            mirrors: [{url: "http://127.0.0.1:\(mirror)", insecure: true}]
        runtime:
          docker: {daemonJSON: \(h.dir)/daemon.json, reload: none}
        """.write(toFile: config, atomically: true, encoding: .utf8)

        let ok = try CLI.run("regwatch-agent", ["check", "--config", config, "--json"])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])
        let endpoints = try #require(doc["endpoints"] as? [[String: Any]])
        #expect(endpoints.count == 2)
        #expect(endpoints.allSatisfy { $0["class"] as? String == "ok" })
        #expect(Set(endpoints.compactMap { $0["role"] as? String }) == ["upstream", "mirror"])
        #expect((endpoints[0]["phases"] as? [String: Any])?["totalMs"] != nil)
        let runtime = try #require(doc["runtime"] as? [String: Any])
        #expect(((runtime["docker"] as? [String: Any])?["mirrors"] as? [String: [String]]) == ["docker.io": ["http://127.0.0.1:\(mirror)"]])
        #expect((doc["host"] as? [String: Any])?["id"] as? String == "node-a1")

        h.stop(name: "mirror")
        let dead = try CLI.run("regwatch-agent", ["check", "--config", config])
        #expect(dead.status == 1)
        #expect(dead.stdout.contains("tcp_refused"))

        try "{\"registry-mirrors\": [\"http://127.0.0.1:\(mirror)\",]}".write(toFile: "\(h.dir)/daemon.json", atomically: true, encoding: .utf8)
        let broken = try CLI.run("regwatch-agent", ["check", "--config", config, "--json"])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("\(h.dir)/daemon.json:1:"))

        let badConfig = try CLI.run("regwatch-agent", ["check", "--config", "\(h.dir)/nope.yaml"])
        #expect(badConfig.status == 2)
        #expect(badConfig.stderr.contains("\(h.dir)/nope.yaml: no such file"))
    }

    @Test("an HTTP proxy that is down is proxy_failure, not the registry's fault")
    func proxyDown() throws {
        let h = RegistryHarness("proxy")
        let up = try h.startRegistry(name: "up")
        let config = "\(h.dir)/agent.yaml"
        try """
        host: {id: node-a1}
        aggregator: {insecure: true}
        registries:
          - {name: docker.io, upstream: "http://127.0.0.1:\(up)", rateLimit: false}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["REGWATCH_LOG_LEVEL"] = "error"
        env["http_proxy"] = "http://127.0.0.1:\(RegistryHarness.freePort())"
        env["no_proxy"] = nil
        env["NO_PROXY"] = nil
        let (status, out) = try RegistryHarness.spawnAndWait(CLI.binary("regwatch-agent"), ["check", "--config", config, "--json"], environment: env)
        #expect(status == 1)
        #expect(out.contains("\"class\" : \"proxy_failure\""), "\(out)")
        // Without the proxy the same registry is fine.
        #expect(try CLI.run("regwatch-agent", ["check", "--config", config]).status == 0)
    }
}
