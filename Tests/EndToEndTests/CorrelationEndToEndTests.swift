import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Correlation with real processes: agents probing real registries report to `regwatch-aggregator
/// serve`, which opens and closes outages, serves them on the API and alerts a real Alertmanager.
/// Windows are 1 s here (agents report every second) so the hold-downs play out in seconds.
@Suite("correlation end to end", .serialized, .ownThread, .tags(.root))
struct CorrelationEndToEndTests {
    static let fastCorrelation = "{window: 1s, openAfter: 2, recoveryHold: 3s, minHosts: 3, minZones: 2, staleAfter: 5}"

    func outages(_ f: Fleet, all: Bool = false) throws -> [[String: Any]] {
        try f.json("/api/v1/outages\(all ? "?state=all" : "")")
    }

    @Test("mirror stopped: endpoint_down within two windows, alert in Alertmanager, closed after recovery; upstream stopped: upstream_down_via_mirror")
    func mirrorOutage() throws {
        // A real Alertmanager receives the webhook.
        let amPort = RegistryHarness.freePort()
        let h0 = RegistryHarness("alertmanager")
        try """
        route: {receiver: sink, group_wait: 1s, group_interval: 1s}
        receivers: [{name: sink}]
        """.write(toFile: "\(h0.dir)/am.yml", atomically: true, encoding: .utf8)
        try h0.start("/usr/bin/prometheus-alertmanager", ["--config.file=\(h0.dir)/am.yml", "--storage.path=\(h0.dir)/data",
                                                           "--web.listen-address=127.0.0.1:\(amPort)", "--cluster.listen-address="])
        defer { h0.stopAll() }
        #expect(RegistryHarness.waitForPort(amPort), "alertmanager did not start")

        let f = try Fleet(correlation: Self.fastCorrelation, extra: """
            alerts: {webhooks: [{url: "http://127.0.0.1:\(amPort)/api/v2/alerts", format: alertmanager}]}
            """)
        // A second mirror with its own copy of the image, so hosts reach something when others fail.
        let mirrorA = try f.h.startRegistry(name: "mirror-a")
        try f.h.pushImage(port: mirrorA, repository: "library/alpine", tag: "3.20")
        let registries = """
            registries:
              - name: docker.io
                upstream: "http://127.0.0.1:\(f.upstream)"
                rateLimit: false
                probeImage: library/alpine:3.20
                mirrors: [{url: "http://127.0.0.1:\(mirrorA)", insecure: true}, {url: "http://127.0.0.1:\(f.mirror)", insecure: true}]
            """
        for (id, zone) in [("n1", "z1"), ("n2", "z1"), ("n3", "z2"), ("n4", "z2")] { try f.addAgent(id, zone: zone, registries: registries) }
        try f.startAggregator()
        for id in ["n1", "n2", "n3", "n4"] { try f.startAgent(id) }
        #expect(try f.eventually(20) {
            try f.json("/api/v1/endpoints").filter { $0["hostsReporting"] as? Int == 4 }.count == 3
        }, "fleet not up: \((try? f.get("/api/v1/endpoints")) ?? "")")
        #expect(try outages(f).isEmpty, "outages before any fault: \((try? f.get("/api/v1/outages")) ?? "")")

        // Fault: mirror-a stops.
        let stopped = Date()
        f.h.stop(name: "mirror-a")
        let mirrorURL = "http://127.0.0.1:\(mirrorA)"
        #expect(try f.eventually(15) { try outages(f).contains { $0["endpoint"] as? String == mirrorURL } })
        let detection = Date().timeIntervalSince(stopped)
        let outage = try #require(try outages(f).first { $0["endpoint"] as? String == mirrorURL })
        #expect(outage["kind"] as? String == "endpoint_down")
        #expect(outage["errorClass"] as? String == "tcp_refused")
        #expect(outage["affectedHosts"] as? Int == 4)
        #expect(outage["totalHosts"] as? Int == 4)
        #expect(outage["state"] as? String == "active")
        #expect(outage.keys.contains("endedAt") && outage["endedAt"] is NSNull)
        print("detection latency (mirror stopped -> endpoint_down on the API): \(String(format: "%.1f", detection)) s with 1 s windows")
        // Two windows of 1 s plus one report interval of 1 s and scheduling slack.
        #expect(detection < 8, "detected after \(detection) s")
        #expect(try f.get("/metrics").contains("regwatch_outage_active{kind=\"endpoint_down\"} 1"))
        // The per-outage series carries the scope and class the alert rules label with; its value is the hosts affected.
        let registry = try #require(outage["registry"] as? String)
        let series = "regwatch_outage{kind=\"endpoint_down\",scope=\"registry=\(registry) endpoint=\(mirrorURL)\",class=\"tcp_refused\"}"
        #expect(try f.metric(series) == 4, "\((try? f.get("/metrics")) ?? "")")
        // Nothing else opened: the hosts reach the other endpoints.
        #expect(try outages(f).count == 1, "\((try? f.get("/api/v1/outages")) ?? "")")

        // Alertmanager got it.
        #expect(try f.eventually(10) {
            let alerts = try f.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(amPort)/api/v2/alerts"])
            return alerts.contains("\"kind\":\"endpoint_down\"") && alerts.contains(mirrorURL)
        }, "alertmanager has no endpoint_down alert")

        // Recovery: closes after the 3 s recovery hold, not before.
        try f.h.restartRegistry(name: "mirror-a", port: mirrorA)
        let restored = Date()
        #expect(try f.eventually(20) { try outages(f).isEmpty })
        #expect(Date().timeIntervalSince(restored) >= 3, "closed before the recovery hold")
        // The ended outage's series is gone (not frozen at 4), while the per-kind count reads 0.
        let after = try f.get("/metrics")
        #expect(metricValue(in: after, "regwatch_outage_active{kind=\"endpoint_down\"}") == 0 && metricValue(in: after, series) == nil, "\(after)")
        let closed = try #require(try outages(f, all: true).first { $0["endpoint"] as? String == mirrorURL })
        #expect(closed["state"] as? String == "resolved")
        #expect((closed["endedAt"] as? String).flatMap(RFC3339.parse) != nil)
        let cli = try CLI.run("regwatch-aggregator", ["outages", "--config", f.config, "--all"])
        #expect(cli.status == 0 && cli.stdout.contains("endpoint_down") && cli.stdout.contains("resolved"), "\(cli.stdout)")

        // The pull-through mirror's upstream stops: its /v2/ answers, its manifests fail. A cache serves
        // what it holds while its upstream is down, so its cached copy expires first (as the proxy's
        // scheduler does after its TTL); then CNCF distribution answers the manifest 404.
        f.h.stop(name: "upstream")
        try FileManager.default.removeItem(atPath: "\(f.dir)/mirror-data/docker/registry/v2/repositories/library/alpine")
        let proxyURL = "http://127.0.0.1:\(f.mirror)"
        #expect(try f.eventually(20) {
            try outages(f).contains { $0["kind"] as? String == "upstream_down_via_mirror" && $0["endpoint"] as? String == proxyURL }
        }, "no upstream_down_via_mirror: \((try? f.get("/api/v1/outages")) ?? "") endpoints: \((try? f.get("/api/v1/endpoints")) ?? "")")
    }

    @Test("one agent in its own network namespace with no route to the registries: host_local for it, nothing fleet-wide")
    func hostLocal() throws {
        // A namespace whose only way out is a veth to the aggregator's address.
        let ns = "rw-h\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
        let net = 10 + Int.random(in: 0..<200)
        let hostSide = "rwh\(net)a", nsSide = "rwh\(net)b"
        let h = RegistryHarness("hostlocal-ns")
        try h.run("/usr/sbin/ip", ["netns", "add", ns])
        defer {
            _ = try? h.run("/usr/sbin/ip", ["link", "del", hostSide])
            _ = try? h.run("/usr/sbin/ip", ["netns", "del", ns])
        }
        try h.run("/usr/sbin/ip", ["link", "add", hostSide, "type", "veth", "peer", "name", nsSide, "netns", ns])
        try h.run("/usr/sbin/ip", ["addr", "add", "10.231.\(net).1/30", "dev", hostSide])
        try h.run("/usr/sbin/ip", ["link", "set", hostSide, "up"])
        try h.run("/usr/sbin/ip", ["-n", ns, "addr", "add", "10.231.\(net).2/30", "dev", nsSide])
        try h.run("/usr/sbin/ip", ["-n", ns, "link", "set", nsSide, "up"])
        try h.run("/usr/sbin/ip", ["-n", ns, "link", "set", "lo", "up"])
        try "nameserver 127.0.0.1\n".write(toFile: "\(h.dir)/resolv.conf", atomically: true, encoding: .utf8)

        let f = try Fleet(correlation: Self.fastCorrelation, zmqHost: "10.231.\(net).1")
        for (id, zone) in [("n1", "z1"), ("n2", "z1"), ("n3", "z2"), ("n4", "z2"), ("lonely", "z1")] { try f.addAgent(id, zone: zone) }
        try f.startAggregator()
        for id in ["n1", "n2", "n3", "n4"] { try f.startAgent(id) }
        let inner = "mount --bind \(h.dir)/resolv.conf /etc/resolv.conf && exec " +
            ["/usr/bin/nsenter", "--net=/run/netns/\(ns)", CLI.binary("regwatch-agent"), "run", "--config", "\(f.dir)/lonely.yaml"].map { "'\($0)'" }.joined(separator: " ")
        f.agents["lonely"] = try f.h.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", inner], stderrPath: "\(f.dir)/lonely.log")

        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 5 }, "hosts: \((try? f.get("/api/v1/hosts")) ?? "")")
        #expect(try f.eventually(15) { try outages(f).contains { $0["kind"] as? String == "host_local" } },
                "no host_local: \((try? f.get("/api/v1/outages")) ?? "")")
        // Several more windows: still only the one host's problem.
        usleep(4_000_000)
        let open = try outages(f)
        #expect(open.count == 1, "\(open)")
        #expect(open.first?["host"] as? String == "lonely")
        #expect(open.first?["errorClass"] as? String == "tcp_refused")
    }

    @Test("429 from the registry for the hosts behind one egress: rate_limit_exhausted for that egress only")
    func rateLimit() throws {
        let f = try Fleet(correlation: Self.fastCorrelation)
        let limited = try f.h.startFaultProxy(upstream: f.upstream, mode: "ratelimit")
        func registries(_ upstream: Int) -> String {
            """
            registries:
              - name: docker.io
                upstream: "http://127.0.0.1:\(upstream)"
                rateLimit: true
                probeImage: library/alpine:3.20
                mirrors: [{url: "http://127.0.0.1:\(f.mirror)", insecure: true}]
            """
        }
        // Egress 203.0.113.7's hosts reach Docker Hub through the exhausted quota; 198.51.100.9's do not.
        try f.addAgent("nat-1", zone: "z1", egress: "203.0.113.7", registries: registries(limited))
        try f.addAgent("nat-2", zone: "z2", egress: "203.0.113.7", registries: registries(limited))
        try f.addAgent("free-1", zone: "z1", egress: "198.51.100.9", registries: registries(f.upstream))
        try f.addAgent("free-2", zone: "z2", egress: "198.51.100.9", registries: registries(f.upstream))
        try f.startAggregator()
        for id in ["nat-1", "nat-2", "free-1", "free-2"] { try f.startAgent(id) }
        #expect(try f.eventually(20) { try outages(f).contains { $0["kind"] as? String == "rate_limit_exhausted" } },
                "no rate_limit_exhausted: \((try? f.get("/api/v1/outages")) ?? "")")
        usleep(3_000_000)
        let open = try outages(f)
        #expect(open.count == 1, "\(open)")
        #expect(open.first?["egress"] as? String == "203.0.113.7")
        #expect(open.first?["affectedHosts"] as? Int == 2)
        #expect(open.first?["errorClass"] as? String == "rate_limited")
        // The fleet gauges refresh every 5 s, independently of correlation windows.
        #expect(try f.eventually(15) { try f.get("/metrics").contains("regwatch_ratelimit_remaining{egress=\"203.0.113.7\"} 0") })
    }
}
