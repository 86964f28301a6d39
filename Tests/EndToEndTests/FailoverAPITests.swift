import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The operator's side of failover on a running aggregator: `advise` mode plans and shows but sends
/// nothing; freeze/thaw need the bearer token (HTTP and CLI); `failovers` and `failover plan` read the
/// database; a token file others can read keeps `serve` from starting.
@Suite("failover API and CLI", .serialized, .ownThread)
struct FailoverAPITests {
    static let token = "0123456789abcdef-operator"

    func post(_ f: Fleet, _ path: String, token: String?) throws -> (status: Int, body: String) {
        var args = ["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", "POST", "http://127.0.0.1:\(f.httpPort)\(path)"]
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        let out = try f.h.run("/usr/bin/curl", args)
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? -1, lines.dropLast().joined(separator: "\n"))
    }

    @Test("advise mode: the outage yields an advised plan, nothing is sent; freeze/thaw with the token only; CLI shows it all")
    func adviseFreezeThaw() throws {
        let h0 = RegistryHarness("token")
        try "\(Self.token)\n".write(toFile: "\(h0.dir)/api-token", atomically: true, encoding: .utf8)
        chmod("\(h0.dir)/api-token", 0o600)
        let f = try Fleet(
            correlation: "{window: 1s, openAfter: 2, recoveryHold: 30s, minHosts: 2, minZones: 2, staleAfter: 5}",
            extra: "apiToken: \(h0.dir)/api-token\nfailover: {mode: advise}")
        for (id, zone) in [("n1", "z1"), ("n2", "z1"), ("n3", "z2"), ("n4", "z2")] { try f.addAgent(id, zone: zone) }
        try f.startAggregator()
        for id in ["n1", "n2", "n3", "n4"] { try f.startAgent(id) }
        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 4 })

        f.h.stop(name: "mirror")
        let mirror = "http://127.0.0.1:\(f.mirror)"
        var plans: [[String: Any]] = []
        #expect(try f.eventually(30) {
            plans = try f.json("/api/v1/failovers")
            return plans.contains { $0["state"] as? String == "advised" }
        }, "no advised plan: \(plans)")
        let plan = try #require(plans.first)
        #expect((plan["mirrors"] as? [String: [String]])?["docker.io"] == [], "\(plan)")
        #expect(plan["pending"] as? Int == 4 && plan["acked"] as? Int == 0)
        #expect((plan["reason"] as? String)?.contains(mirror) == true, "\(plan)")
        // Advice only: no host was sent anything.
        sleep(2)
        #expect(try f.json("/api/v1/hosts").allSatisfy { $0["appliedGeneration"] as? Int == 0 })
        #expect(!((try? String(contentsOfFile: "\(f.dir)/aggregator.log", encoding: .utf8)) ?? "").contains("failover directive sent"))

        let cliPlan = try CLI.run("regwatch-aggregator", ["failover", "plan", "--config", f.config])
        #expect(cliPlan.status == 0 && cliPlan.stdout.contains("would plan") && cliPlan.stdout.contains("docker.io=[]"), "\(cliPlan.stdout)\(cliPlan.stderr)")
        let cliList = try CLI.run("regwatch-aggregator", ["failovers", "--config", f.config, "--json"])
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(cliList.stdout.utf8)) as? [[String: Any]])
        #expect(listed.first?["generation"] as? Int == plan["generation"] as? Int)
        #expect(Set(listed.first?.keys.map { $0 } ?? []) == ["generation", "state", "reason", "mirrors", "acked", "pending", "rejected"])

        // The dashboard shows the grid, the outage and the advised generation.
        let page = try f.get("/")
        #expect(page.contains("<h1>regwatch fleet</h1>") && ["n1", "n2", "n3", "n4"].allSatisfy { page.contains("<a href=\"/hosts/\($0)\"><bdi>\($0)</bdi></a>") })
        #expect(page.contains("endpoint_down") && page.contains("advised") && page.contains(mirror), "\(page)")
        let headers = try f.h.run("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:\(f.httpPort)/"])
        #expect(headers.lowercased().contains("content-security-policy: default-src 'none'"), "\(headers)")

        // Freeze and thaw need the token.
        #expect(try post(f, "/api/v1/failovers/freeze", token: nil).status == 401)
        #expect(try post(f, "/api/v1/failovers/freeze", token: Self.token + "x").status == 401)
        #expect(try post(f, "/api/v1/failovers/freeze", token: String(Self.token.dropLast())).status == 401)
        let frozen = try post(f, "/api/v1/failovers/freeze?reason=maintenance", token: Self.token)
        #expect(frozen.status == 200 && frozen.body.contains("\"frozen\":true"), "\(frozen)")
        let shown = try CLI.run("regwatch-aggregator", ["failovers", "--config", f.config])
        #expect(shown.stdout.contains("FROZEN") && shown.stdout.contains("maintenance"), "\(shown.stdout)")
        // The freeze is on /metrics at once, with when it began (what RegwatchFailoverFrozenTooLong measures).
        let frozenMetrics = try f.get("/metrics")
        #expect(metricValue(in: frozenMetrics, "regwatch_failover_frozen") == 1, "\(frozenMetrics)")
        let since = metricValue(in: frozenMetrics, "regwatch_failover_frozen_since_timestamp_seconds") ?? 0
        #expect(abs(since - Date().timeIntervalSince1970) < 60, "frozen since \(since)")
        let thaw = try CLI.run("regwatch-aggregator", ["failover", "thaw", "--config", f.config])
        #expect(thaw.status == 0 && thaw.stdout.contains("\"frozen\":false"), "\(thaw.stdout)\(thaw.stderr)")
        let thawed = try f.get("/metrics")
        #expect(metricValue(in: thawed, "regwatch_failover_frozen") == 0
                && metricValue(in: thawed, "regwatch_failover_frozen_since_timestamp_seconds") == 0, "\(thawed)")
        let freeze = try CLI.run("regwatch-aggregator", ["failover", "freeze", "--config", f.config, "--reason", "cli"])
        #expect(freeze.status == 0 && freeze.stdout.contains("\"frozen\":true"), "\(freeze.stdout)\(freeze.stderr)")
        // The preview says why nothing new is planned.
        let frozenPlan = try CLI.run("regwatch-aggregator", ["failover", "plan", "--config", f.config])
        #expect(frozenPlan.status == 0 && frozenPlan.stdout.contains("failover is FROZEN since") && frozenPlan.stdout.contains("(cli)"), "\(frozenPlan.stdout)")
        #expect(try f.get("/metrics").contains("regwatch_failover_generation \(plan["generation"] as? Int ?? -1)"))
    }

    @Test("an API token file others can read, or a missing one, keeps serve from starting with one line naming apiToken")
    func badTokenFile() throws {
        let h = RegistryHarness("badtoken")
        try "\(Self.token)\n".write(toFile: "\(h.dir)/token", atomically: true, encoding: .utf8)
        chmod("\(h.dir)/token", 0o644)
        for path in ["\(h.dir)/token", "\(h.dir)/missing"] {
            try """
            listen: {zmq: "tcp://127.0.0.1:\(RegistryHarness.freePort())", http: "127.0.0.1:\(RegistryHarness.freePort())"}
            database: \(h.dir)/db.sqlite
            keys: {dir: \(h.dir)/keys}
            insecure: true
            apiToken: \(path)
            """.write(toFile: "\(h.dir)/agg.yaml", atomically: true, encoding: .utf8)
            let r = try CLI.run("regwatch-aggregator", ["serve", "--config", "\(h.dir)/agg.yaml"])
            #expect(r.status == 2, "\(r.stderr)")
            #expect(r.stderrLines.count == 1 && r.stderr.contains("apiToken"), "\(r.stderr)")
        }
    }
}

/// An egress whose Docker Hub quota is exhausted gets its authenticated mirror first; hosts behind other
/// egress IPs keep their order.
@Suite("failover for an exhausted quota", .serialized, .ownThread)
struct FailoverQuotaTests {
    @Test("429 for the hosts behind one egress: those hosts, and only those, get the authenticated mirror first")
    func authenticatedMirrorFirst() throws {
        let f = try Fleet(correlation: "{window: 1s, openAfter: 2, recoveryHold: 60s, minHosts: 2, minZones: 2, staleAfter: 5}",
                          extra: "failover: {resendInterval: 3s}")
        let limited = try f.h.startFaultProxy(upstream: f.upstream, mode: "ratelimit")
        let auth = try f.h.startRegistry(name: "auth-mirror", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(f.upstream)\"}")
        let plain = "http://127.0.0.1:\(f.mirror)", authURL = "http://127.0.0.1:\(auth)"
        func config(_ id: String, upstream: Int) -> String {
            """
            registries:
              - name: docker.io
                upstream: "http://127.0.0.1:\(upstream)"
                rateLimit: true
                probeImage: library/alpine:3.20
                mirrors: [{url: "\(plain)", insecure: true, trusted: true}, {url: "\(authURL)", insecure: true, trusted: true, authenticated: true}]
            runtime:
              containerd: {certsDir: \(f.dir)/\(id)/certs.d}
            """
        }
        try f.addAgent("nat-1", zone: "z1", egress: "203.0.113.7", registries: config("nat-1", upstream: limited))
        try f.addAgent("nat-2", zone: "z2", egress: "203.0.113.7", registries: config("nat-2", upstream: limited))
        try f.addAgent("free-1", zone: "z1", egress: "198.51.100.9", registries: config("free-1", upstream: f.upstream))
        try f.addAgent("free-2", zone: "z2", egress: "198.51.100.9", registries: config("free-2", upstream: f.upstream))
        try f.startAggregator()
        for id in ["nat-1", "nat-2", "free-1", "free-2"] { try f.startAgent(id) }

        var plan: [String: Any]?
        let done = try f.eventually(45) {
            plan = try f.json("/api/v1/failovers").first { ($0["mirrors"] as? [String: [String]])?["docker.io"] == [authURL, plain] }
            return plan?["state"] as? String == "complete"
        }
        #expect(done, "no complete failover to the authenticated mirror: \((try? f.get("/api/v1/failovers")) ?? "")")
        let g = plan?["generation"] as? Int ?? -1
        #expect((plan?["reason"] as? String)?.contains("rate_limit_exhausted") == true, "\(String(describing: plan))")
        let applied = Dictionary(uniqueKeysWithValues: try f.json("/api/v1/hosts").map { ($0["id"] as! String, $0["appliedGeneration"] as? Int ?? -1) })
        #expect(applied["nat-1"] == g && applied["nat-2"] == g && applied["free-1"] == 0 && applied["free-2"] == 0, "\(applied)")
        let toml = try String(contentsOfFile: "\(f.dir)/nat-1/certs.d/docker.io/hosts.toml", encoding: .utf8)
        let first = try #require(toml.range(of: authURL)), second = try #require(toml.range(of: plain))
        #expect(first.lowerBound < second.lowerBound, "\(toml)")
        #expect(!FileManager.default.fileExists(atPath: "\(f.dir)/free-1/certs.d/docker.io/hosts.toml"))
    }
}
