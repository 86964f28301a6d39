import Crypto
import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// The dashboard is rendered from values: every section present, and nothing an agent sends (host ids,
/// labels, error details) can become markup.
@Suite("Dashboard page")
struct DashboardPageTests {
    typealias F = StoreFixture

    @Test("grid, outages, failover timeline and headroom; agent-supplied text is escaped")
    func rendersEscaped() throws {
        let evil = "<script>alert(1)</script>"
        let probeA = F.probe(F.mirrorA, .tcpRefused)
        var probeHub = F.probe(F.hub, remaining: 7)
        probeHub.detail = "\"><img src=x onerror=alert(2)>"
        let host = HostRow(id: "node-\(evil)", labels: ["zone": evil], lastSeen: F.t0, firstSeen: F.t0, appliedGeneration: 3,
                           agentVersion: "0.1.0", intervalSeconds: 30, connected: true, status: .problems)
        let states = [probeA, probeHub].map {
            LatestStateRow(hostID: host.id, labels: ["zone": evil, "egress": "198.51.100.7"], probe: $0, observedAt: F.t0, hostLastSeen: F.t0, stale: false)
        }
        let endpoints = [
            EndpointRow(endpoint: F.hub, registry: "docker.io", role: .upstream, hostsReporting: 1, hostsFailing: 0, errorClass: .ok,
                        p50Ms: 20, p95Ms: 20, lowestRateLimitRemaining: 7),
            EndpointRow(endpoint: F.mirrorA, registry: "docker.io", role: .mirror, hostsReporting: 1, hostsFailing: 1, errorClass: .tcpRefused,
                        p50Ms: nil, p95Ms: nil, lowestRateLimitRemaining: nil),
        ]
        let outage = OutageRow(
            id: 1, kind: .endpointDown, state: .active, endpoint: F.mirrorA, registry: "docker.io", zone: nil, host: nil, egress: nil,
            errorClass: .tcpRefused, affectedHosts: 4, totalHosts: 4,
            evidence: [OutageEvidence(host: evil, errorClass: .tcpRefused, detail: "refused \(evil)")], startedAt: F.t0, endedAt: nil)
        var plan = FailoverPlan(generation: 3, kind: .failover, state: .complete, reason: "failover: \(evil)",
                                mirrors: ["docker.io": [F.mirrorB]], createdAt: F.t0, hosts: [:])
        plan.acked = 4
        let html = DashboardPage(now: F.t0, hosts: [host], endpoints: endpoints, states: states, outages: [outage], failovers: [plan],
                                 frozen: .init(since: F.t0, reason: evil)).render()
        #expect(!html.contains("<script") && !html.contains("<img"), "agent text became markup")
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("endpoint_down") && html.contains("4/4"))
        #expect(html.contains("tcp_refused") && html.contains(F.mirrorA))
        #expect(html.contains("<td>3</td>") && html.contains("complete") && html.contains(F.mirrorB))
        // Outages link to their hosts; the grid's host ids link to their pages.
        #expect(html.contains("<a href=\"/hosts/node-%3Cscript%3Ealert%281%29%3C%2Fscript%3E\">"), "\(html)")
        #expect(html.contains("FROZEN"))
        #expect(html.contains("198.51.100.7") && html.contains("<td>7</td>"))
        #expect(html.contains("http-equiv=\"refresh\""))
    }

    @Test("the only inline content is the stylesheet the CSP allows by hash; no scripts, no style attributes")
    func contentSecurityPolicy() throws {
        let html = DashboardPage(now: F.t0, hosts: [], endpoints: [], states: [], outages: [], failovers: []).render()
        let start = try #require(html.range(of: "<style>")), end = try #require(html.range(of: "</style>"))
        let style = String(html[start.upperBound..<end.lowerBound])
        let hash = "'sha256-" + Data(SHA256.hash(data: Data(style.utf8))).base64EncodedString() + "'"
        #expect(HTMLDocument.contentSecurityPolicy.contains("style-src \(hash);"))
        #expect(HTMLDocument.contentSecurityPolicy.hasPrefix("default-src 'none';"))
        #expect(!html.contains("<script") && !html.contains(" style=") && !html.contains("<img"))
    }

    @Test("24 h history: outage bars per scope, failover generations, latency and headroom sparklines on one axis")
    func history() throws {
        let now = F.t0
        let hour = 3600.0
        let down = OutageRow(id: 1, kind: .endpointDown, state: .resolved, endpoint: F.mirrorA, registry: "docker.io", zone: nil, host: nil,
                             egress: nil, errorClass: .tcpRefused, affectedHosts: 4, totalHosts: 4, evidence: [],
                             startedAt: now - 6 * hour, endedAt: now - 5 * hour)
        var again = down
        again.id = 2
        again.state = .active
        again.startedAt = now - 1 * hour
        again.endedAt = nil
        let zone = OutageRow(id: 3, kind: .zoneNetwork, state: .resolved, endpoint: nil, registry: nil, zone: "z2", host: nil, egress: nil,
                             errorClass: .tcpTimeout, affectedHosts: 2, totalHosts: 4, evidence: [], startedAt: now - 20 * hour, endedAt: now - 19 * hour)
        var plan = FailoverPlan(generation: 5, kind: .failover, state: .rolling, reason: "endpoint_down", mirrors: ["docker.io": [F.mirrorB]],
                                createdAt: now - 50 * 60, hosts: [:])
        plan.acked = 1
        let minutes = (0..<120).map { i in
            ProbeMinuteRow(registry: "docker.io", endpoint: F.mirrorB, minute: now - Double(120 - i) * 60, samples: 4, failures: 0,
                           failureClasses: [:], timedSamples: 4, meanMs: 20, minMs: 10, maxMs: 90, p50Ms: 20, p95Ms: i == 60 ? 90 : 30)
        }
        let headroom = (0..<30).map { i in HeadroomMinuteRow(egress: "203.0.113.7", minute: now - Double(30 - i) * 60, remaining: 100 - 3 * i) }
        let page = DashboardPage(now: now, hosts: [], endpoints: [], states: [], outages: [again], failovers: [plan],
                                 history: DashboardHistory(since: now - 24 * hour, outages: [zone, down, again], minutes: minutes, headroom: headroom))
        let html = page.render()
        // Two scopes, two rows; the mirror's row holds both of its outages.
        #expect(html.components(separatedBy: "<div class=\"row\">").count - 1 == 2 + 1 + 1 + 1, "\(html)")
        #expect(html.components(separatedBy: "<rect ").count - 1 == 3 + 1)
        // The bar of the outage 6 h ago starts at 18/24 of the width and is 1/24 wide.
        #expect(html.contains("<rect x=\"540.0\" y=\"0\" width=\"30.0\""), "\(html)")
        // The active one runs until now.
        #expect(html.contains("<rect x=\"690.0\" y=\"0\" width=\"30.0\""))
        #expect(html.contains("generation 5 failover rolling"))
        // Latency: p50 and dashed p95 lines; headroom: one line whose last point is at the right edge region.
        #expect(html.contains("stroke-dasharray") && html.contains("p50 20 ms, p95 30 ms"))
        #expect(html.contains("now 13, lowest 13, scale 0–100"))
        #expect(html.components(separatedBy: "<div class=\"axis\">").count - 1 == 5, "above and below the outages, under each other chart")
    }

    @Test("the host page: status, probes, runtime mirror order, applied generation, spool, pull failures, its outages; all escaped")
    func hostPage() throws {
        let evil = "\u{202E}<b>rtl</b>\"'"
        let host = HostRow(id: "node-1", labels: ["zone": "z1", "team": evil], lastSeen: F.t0, firstSeen: F.t0, appliedGeneration: 3,
                           agentVersion: "0.1.0", intervalSeconds: 30, connected: true,
                           eventSources: [EventSourceStatus(name: "journal", state: .active, detail: evil)],
                           spool: SpoolStatus(pending: 2, dropped: 40), status: .problems)
        var probe = F.probe(F.mirrorA, .tcpRefused)
        probe.detail = "connect to 10.0.0.5 refused \(evil)"
        let states = [LatestStateRow(hostID: "node-1", labels: host.labels, probe: probe, observedAt: F.t0, hostLastSeen: F.t0, stale: false),
                      LatestStateRow(hostID: "node-2", labels: host.labels, probe: F.probe(F.hub), observedAt: F.t0, hostLastSeen: F.t0, stale: false)]
        let runtime = RuntimeConfigState(runtime: .containerd, mirrors: ["docker.io": [F.mirrorB, F.mirrorA]], valid: true, hash: "h")
        let failure = PullEvent(seq: 9, at: F.t0, image: "docker.io/library/\(evil)", registry: "docker.io", endpoint: F.mirrorA,
                                result: .failure, errorClass: .tcpRefused, detail: evil, source: "journal")
        let outage = OutageRow(id: 1, kind: .endpointDown, state: .active, endpoint: F.mirrorA, registry: "docker.io", zone: nil, host: nil,
                               egress: nil, errorClass: .tcpRefused, affectedHosts: 1, totalHosts: 2, evidence: [], startedAt: F.t0, endedAt: nil)
        let elsewhere = OutageRow(id: 2, kind: .hostLocal, state: .active, endpoint: nil, registry: nil, zone: nil, host: "node-2",
                                  egress: nil, errorClass: .dnsFailure, affectedHosts: 1, totalHosts: 2, evidence: [], startedAt: F.t0, endedAt: nil)
        let html = HostPage(host: host, states: states, runtimes: [runtime], pullFailures: [failure], outages: [outage, elsewhere],
                            fleetGeneration: 5).render()
        #expect(html.contains("<h1>host <bdi>node-1</bdi></h1>"))
        #expect(html.contains("\(F.mirrorB)</bdi> → <bdi>\(F.mirrorA)"), "mirror order")
        #expect(html.contains("3 <span class=\"muted\">(fleet is at 5)</span>"))
        #expect(html.contains("2 pending, 40 dropped"))
        #expect(html.contains("Active outages including this host (1)") && !html.contains("host_local"))
        #expect(html.contains("Recent pull failures") && html.contains("tcp_refused"))
        #expect(!html.contains(F.hub), "another host's probe is on this page")
        #expect(!html.contains("<b>rtl") && html.contains("<bdi>\u{202E}&lt;b&gt;rtl&lt;/b&gt;&quot;&#39;"), "\(html)")
        #expect(HostPage.notFound("<x>").contains("No host <bdi>&lt;x&gt;</bdi>"))
    }

    @Test("an empty fleet says so instead of rendering empty tables")
    func empty() {
        let html = DashboardPage(now: F.t0, hosts: [], endpoints: [], states: [], outages: [], failovers: []).render()
        #expect(html.contains("no host has reported yet") && html.contains("no failover generations yet") && html.contains("none"))
        #expect(html.contains("no outages in this window") && html.contains("no timed probes in this window"))
    }
}
