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
        #expect(html.contains("FROZEN"))
        #expect(html.contains("198.51.100.7") && html.contains("<td>7</td>"))
        #expect(html.contains("http-equiv=\"refresh\""))
    }

    @Test("an empty fleet says so instead of rendering empty tables")
    func empty() {
        let html = DashboardPage(now: F.t0, hosts: [], endpoints: [], states: [], outages: [], failovers: []).render()
        #expect(html.contains("no host has reported yet") && html.contains("no failover generations yet") && html.contains("none"))
    }
}
