import Foundation
import RegwatchTestSupport
import Testing

/// `regwatch-agent diagnose` end to end against real registries.
@Suite("diagnose command", .serialized, .ownThread)
struct DiagnoseCommandTests {
    func config(_ h: RegistryHarness, upstream: Int, mirrors: [Int], credentials: String? = nil) throws -> String {
        let path = "\(h.dir)/agent-\(UUID().uuidString).yaml"
        let mirrorList = mirrors.map { "{url: \"http://127.0.0.1:\($0)\", insecure: true}" }.joined(separator: ", ")
        try """
        host: {id: node-a1}
        aggregator: {insecure: true}
        registries:
          - name: docker.io
            upstream: http://127.0.0.1:\(upstream)
            mirrors: [\(mirrorList)]
        \(credentials.map { "    credentials: \($0)" } ?? "")
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)\(r.stderr)")
    }

    @Test("healthy path exits 0; a dead first mirror is the verdict, with the fall-through named")
    func deadFirstMirror() throws {
        let h = RegistryHarness("diag-mirror")
        let up = try h.startRegistry(name: "up")
        try h.pushImage(port: up, repository: "test/app", tag: "1")
        let mirror = try h.startRegistry(name: "mirror", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(up)\"}")
        let path = try config(h, upstream: up, mirrors: [mirror])
        let ok = try CLI.run("regwatch-agent", ["diagnose", "test/app:1", "--config", path, "--json"])
        #expect(ok.status == 0, "\(ok.stdout)")
        #expect((try json(ok)["verdict"] as? [String: Any])?["class"] as? String == "ok")

        h.stop(name: "mirror")
        let dead = try CLI.run("regwatch-agent", ["diagnose", "test/app:1", "--config", path, "--json"])
        #expect(dead.status == 1)
        let doc = try json(dead)
        let verdict = try #require(doc["verdict"] as? [String: Any])
        #expect(verdict["class"] as? String == "tcp_refused")
        #expect((verdict["summary"] as? String)?.contains("pulls fall through to http://127.0.0.1:\(up)") == true)
        #expect((verdict["next"] as? String)?.contains("nothing listens on 127.0.0.1:\(mirror)") == true)
        let steps = try #require(doc["steps"] as? [[String: Any]])
        #expect(steps.map { $0["role"] as? String } == ["mirror", "upstream"])
        #expect(steps.map { $0["check"] as? String } == ["tcp", "manifest"])

        let text = try CLI.run("regwatch-agent", ["diagnose", "test/app:1", "--config", path])
        #expect(text.stdout.contains("verdict: tcp_refused"))
        #expect(text.stdout.contains("next step:"))
    }

    @Test("wrong credentials are the verdict, naming the registry")
    func wrongCredentials() throws {
        let h = RegistryHarness("diag-auth")
        let file = try h.htpasswd(user: "alice", password: "s3cret")
        let up = try h.startRegistry(name: "up", extra: "auth: {htpasswd: {realm: regwatch-test, path: \"\(file)\"}}")
        try h.pushImage(port: up, repository: "test/app", tag: "1", user: "alice:s3cret")
        let auth = Data("alice:rotated".utf8).base64EncodedString()
        try #"{"auths": {"https://index.docker.io/v1/": {"auth": "\#(auth)"}}}"#.write(toFile: "\(h.dir)/config.json", atomically: true, encoding: .utf8)
        let path = try config(h, upstream: up, mirrors: [], credentials: "\(h.dir)/config.json")
        let r = try CLI.run("regwatch-agent", ["diagnose", "test/app:1", "--config", path, "--json"])
        #expect(r.status == 1)
        let verdict = try #require(try json(r)["verdict"] as? [String: Any])
        #expect(verdict["class"] as? String == "auth_failed")
        #expect((verdict["next"] as? String)?.contains("credentials for docker.io") == true)

        let usage = try CLI.run("regwatch-agent", ["diagnose", "not an image", "--config", path])
        #expect(usage.status == 2)
    }

    @Test("a rate-limited upstream is the verdict, with the quota counts in the next step")
    func rateLimitedUpstream() throws {
        let h = RegistryHarness("diag-quota")
        let registry = try h.startRegistry(name: "up")
        try h.pushImage(port: registry, repository: "test/app", tag: "1")
        let hub = try h.startFaultProxy(upstream: registry, mode: "ratelimit")
        let path = try config(h, upstream: hub, mirrors: [])
        let r = try CLI.run("regwatch-agent", ["diagnose", "test/app:1", "--config", path, "--json"])
        #expect(r.status == 1)
        let verdict = try #require(try json(r)["verdict"] as? [String: Any])
        #expect(verdict["class"] as? String == "rate_limited")
        #expect((verdict["next"] as? String)?.contains("0/100 left per 6 h for 203.0.113.7") == true, "\(verdict)")
    }
}
