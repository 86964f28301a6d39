import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// One evaluation window: which outages a fleet's latest probes show, for every kind and for the
/// situations that must not look like a fleet outage.
@Suite("Correlation detection")
struct CorrelationTests {
    typealias F = CorrelationFixture

    struct Scenario: Sendable, CustomTestStringConvertible {
        let name: String
        let rows: [LatestStateRow]
        let expected: [OutageKey]
        var testDescription: String { name }
    }

    static let scenarios: [Scenario] = [
        Scenario(name: "healthy fleet: nothing", rows: F.healthyFleet, expected: []),
        Scenario(
            name: "one host failing everything: only host_local",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", failing: F.everything(.networkUnreachable))),
            expected: [F.local("a1")]),
        Scenario(
            name: "two hosts in one zone failing one mirror: below quorum",
            rows: F.fleet(replacing: F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .tcpTimeout])),
            expected: []),
        Scenario(
            name: "4 hosts in 2 zones fail mirror while reaching upstream: endpoint_down",
            rows: F.hosts(["a1", "a2"], zone: "z1", endpoints: [F.hub, F.mirrorA], failing: [F.mirrorA: .tcpTimeout])
                + F.hosts(["b1", "b2"], zone: "z2", endpoints: [F.hub, F.mirrorA], failing: [F.mirrorA: .tcpTimeout]),
            expected: [F.endpointDown(F.mirrorA)]),
        Scenario(
            name: "zone z2 fails everything while z1 is fine: zone_network z2 only",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1") + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: F.everything(.tcpTimeout)),
            expected: [F.zone("z2")]),
        Scenario(
            name: "every zone fails everything: no zone, no host, no endpoint can be blamed",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: F.everything(.tcpTimeout))
                + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: F.everything(.tcpTimeout)),
            expected: []),
        Scenario(
            name: "one zone's hosts fail one mirror: a path problem, not the endpoint",
            rows: F.fleet(replacing: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: [F.mirrorA: .tcpTimeout])),
            expected: []),
        Scenario(
            name: "single-zone fleet: the zone rule cannot apply, 3 hosts are a quorum",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: [F.mirrorA: .tcpRefused]) + F.hosts(["a4"], zone: "z1"),
            expected: [F.endpointDown(F.mirrorA)]),
        Scenario(
            name: "no zone labels at all: hosts alone make the quorum",
            rows: F.hosts(["h1", "h2", "h3"], zone: nil, failing: [F.mirrorA: .tcpRefused]),
            expected: [F.endpointDown(F.mirrorA)]),
        Scenario(
            name: "a minority of the reporting hosts: no fleet outage",
            rows: F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.hosts(["b1"], zone: "z2", failing: [F.mirrorA: .tcpTimeout])
                + F.hosts(["a3", "a4", "a5"], zone: "z1") + F.hosts(["b2", "b3", "b4"], zone: "z2"),
            expected: []),
        Scenario(
            name: "a host_local host does not complete another endpoint's quorum",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", failing: F.everything(.tcpTimeout))
                + F.host("a2", zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.host("b1", zone: "z2", failing: [F.mirrorA: .tcpTimeout])),
            expected: [F.local("a1")]),
        Scenario(
            name: "a host_local host that still gets HTTP answers (its own broken credentials) completes no quorum",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", failing: F.everything(.authFailed))
                + F.host("a2", zone: "z1", failing: [F.mirrorA: .authFailed]) + F.host("b1", zone: "z2", failing: [F.mirrorA: .authFailed])),
            expected: [F.local("a1")]),
        Scenario(
            name: "stale hosts ignored: they would otherwise make quorum",
            rows: F.host("a1", zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.host("b1", zone: "z2", failing: [F.mirrorA: .tcpTimeout])
                + F.host("a2", zone: "z1", stale: true, failing: [F.mirrorA: .tcpTimeout]) + F.host("b2", zone: "z2", stale: true, failing: [F.mirrorA: .tcpTimeout])
                + F.host("a3", zone: "z1") + F.host("b3", zone: "z2"),
            expected: []),
        Scenario(
            name: "a stale host failing everything is not host_local",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", stale: true, failing: F.everything(.tcpTimeout))),
            expected: []),
        Scenario(
            name: "one name NXDOMAIN from many hosts: dns_outage",
            rows: F.fleet(replacing: F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .dnsNXDomain])
                + F.hosts(["b1", "b2"], zone: "z2", failing: [F.mirrorA: .dnsNXDomain])),
            expected: [F.dns(F.mirrorA)]),
        Scenario(
            name: "every host's resolver broken: every name fails, no dns_outage",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: F.everything(.dnsFailure))
                + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: F.everything(.dnsFailure)),
            expected: []),
        Scenario(
            name: "auth fails fleet-wide for the upstream: auth_broken",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: [F.hub: .authFailed]) + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: [F.hub: .authFailed]),
            expected: [F.auth(F.hub)]),
        Scenario(
            name: "access denied fleet-wide: auth_broken",
            rows: F.fleet(replacing: F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorB: .accessDenied])
                + F.hosts(["b1", "b2"], zone: "z2", failing: [F.mirrorB: .accessDenied])),
            expected: [F.auth(F.mirrorB)]),
        Scenario(
            name: "rate-limited egress group, other groups healthy: rate_limit_exhausted for that egress only",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", egress: "nat-1", failing: [F.hub: .rateLimited])
                + F.hosts(["b1", "b2", "b3"], zone: "z2", egress: "nat-2"),
            expected: [F.quota("nat-1")]),
        Scenario(
            name: "the whole fleet behind one exhausted NAT: quota, not Docker Hub down",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", failing: [F.hub: .rateLimited]) + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: [F.hub: .rateLimited]),
            expected: [F.quota("nat-1")]),
        Scenario(
            name: "remaining quota under the threshold counts as exhausted",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", egress: "nat-1", probes: [F.probe(F.hub, remaining: 3)])
                + F.hosts(["b1", "b2", "b3"], zone: "z2", egress: "nat-2", probes: [F.probe(F.hub, remaining: 80)]),
            expected: [F.quota("nat-1")]),
        Scenario(
            name: "one host of a three-host egress group rate-limited: not the group's quota",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", failing: [F.hub: .rateLimited])),
            expected: []),
        Scenario(
            name: "a one-host egress group is its own quota",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", egress: "198.51.100.9", failing: [F.hub: .rateLimited])),
            expected: [F.quota("198.51.100.9")]),
        Scenario(
            name: "no egress label: the registry's ratelimit source is the egress",
            rows: F.hosts(["h1", "h2", "h3"], zone: nil, egress: nil, probes: [F.probe(F.hub, remaining: 0, source: "203.0.113.7")]),
            expected: [F.quota("203.0.113.7")]),
        Scenario(
            name: "a certificate expiring, seen by one host: cert_expiring",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 5)])),
            expected: [F.cert(F.mirrorB)]),
        Scenario(
            name: "a certificate outside the warning window: nothing",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 15)])),
            expected: []),
        Scenario(
            name: "a stale host's certificate reading: nothing",
            rows: F.fleet(replacing: F.host("a1", zone: "z1", stale: true, probes: [F.probe(F.mirrorB, daysLeft: 2)])),
            expected: []),
        Scenario(
            name: "upstream down: mirror answers, its manifest 404s fleet-wide; upstream /v2/ 503",
            rows: F.hosts(["a1", "a2", "a3"], zone: "z1", probes: upstreamDown) + F.hosts(["b1", "b2", "b3"], zone: "z2", probes: upstreamDown),
            expected: [F.endpointDown(F.hub), F.viaMirror(F.mirrorA)]),
        Scenario(
            name: "a mirror's manifest HEAD hangs on its dead upstream: upstream_down_via_mirror",
            rows: F.fleet(replacing: F.hosts(["a1", "a2"], zone: "z1", probes: [hangingManifest]) + F.hosts(["b1", "b2"], zone: "z2", probes: [hangingManifest])),
            expected: [F.viaMirror(F.mirrorA)]),
        Scenario(
            name: "a mirror's own /v2/ answers 503: endpoint_down, not its upstream",
            rows: F.fleet(replacing: F.hosts(["a1", "a2"], zone: "z1", probes: [mirrorPing503]) + F.hosts(["b1", "b2"], zone: "z2", probes: [mirrorPing503])),
            expected: [F.endpointDown(F.mirrorA)]),
    ]

    static let upstreamDown = [
        F.probe(F.hub, .serverError, detail: "GET /v2/ answered 503"),
        F.probe(F.mirrorA, .notFound, detail: "HEAD /v2/library/alpine/manifests/latest answered 404", manifestStatus: 404),
    ]
    static let hangingManifest = F.probe(
        F.mirrorA, .timeout, detail: "HEAD manifest library/alpine:latest: Operation timed out after 10001 milliseconds with 0 bytes received")
    static let mirrorPing503 = F.probe(F.mirrorA, .serverError, detail: "GET /v2/ answered 503")

    @Test("an endpoint candidate is dated by the report that completed its quorum (the k-th counted failure)")
    func quorumTime() throws {
        // Failing reports arrive at +1..+5 s; quorum (minHosts 3, half of 6 reporters = 3) completes at +3 s.
        var rows: [LatestStateRow] = []
        for (i, (id, zone)) in [("a1", "z1"), ("b1", "z2"), ("a2", "z1"), ("b2", "z2"), ("a3", "z1")].enumerated() {
            rows += F.host(id, zone: zone, at: F.t0.addingTimeInterval(Double(i + 1)), failing: [F.mirrorA: .tcpRefused])
        }
        rows += F.host("b3", zone: "z2", at: F.t0)
        let candidate = try #require(F.detect(rows).first { $0.key == F.endpointDown(F.mirrorA) })
        #expect(candidate.affectedHosts == 5)
        #expect(candidate.observedAt == F.t0.addingTimeInterval(3))
    }

    @Test("scenario", arguments: scenarios)
    func scenario(_ s: Scenario) {
        #expect(F.detect(s.rows).map(\.key) == s.expected.sorted())
    }

    @Test("every outage kind is produced by some scenario")
    func everyKindCovered() {
        let kinds = Set(Self.scenarios.flatMap(\.expected).map(\.kind))
        #expect(kinds == Set(OutageKind.allCases))
    }

    // MARK: - Counts, classes and evidence

    @Test("endpoint_down: dominant tcp_timeout, affected 4 of 4, evidence from every affected host")
    func endpointDownCounts() throws {
        let rows = F.hosts(["a1", "a2"], zone: "z1", endpoints: [F.hub, F.mirrorA], failing: [F.mirrorA: .tcpTimeout])
            + F.hosts(["b1", "b2"], zone: "z2", endpoints: [F.hub, F.mirrorA], failing: [F.mirrorA: .tcpTimeout])
        let c = try #require(F.detect(rows).only)
        #expect(c.key == F.endpointDown(F.mirrorA))
        #expect(c.errorClass == .tcpTimeout)
        #expect(c.affectedHosts == 4 && c.totalHosts == 4)
        #expect(c.evidence.map(\.host) == ["a1", "a2", "b1", "b2"])
        #expect(c.evidence.map(\.zone) == ["z1", "z1", "z2", "z2"])
        #expect(c.evidence.allSatisfy { $0.endpoint == F.mirrorA && $0.errorClass == .tcpTimeout && $0.detail.contains("tcp_timeout") })
    }

    @Test("dominant class is the most common one; evidence is capped at five, in host order")
    func dominantAndEvidenceCap() throws {
        let rows = F.hosts(["a1", "a2", "a3", "a4"], zone: "z1", failing: [F.mirrorA: .tcpTimeout])
            + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: [F.mirrorA: .tcpRefused]) + F.hosts(["b4"], zone: "z2")
        let c = try #require(F.detect(rows).only)
        #expect(c.errorClass == .tcpTimeout)
        #expect(c.affectedHosts == 7 && c.totalHosts == 8)
        #expect(c.evidence.map(\.host) == ["a1", "a2", "a3", "a4", "b1"])
    }

    @Test("a class tie is broken by the class order, not by row order")
    func dominantTie() throws {
        let rows = F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.hosts(["b1", "b2"], zone: "z2", failing: [F.mirrorA: .tcpRefused])
        let forward = try #require(F.detect(rows).only)
        let backward = try #require(F.detect(rows.reversed()).only)
        #expect(forward.errorClass == .tcpRefused && backward.errorClass == .tcpRefused)
        #expect(FleetSnapshot.dominant([.tcpTimeout, .tcpRefused, .tcpTimeout]) == .tcpTimeout)
    }

    @Test("stale hosts are not healthy either: three fresh failing hosts of seven are all that count")
    func staleNotHealthy() throws {
        let rows = F.host("a1", zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.hosts(["b1", "b2"], zone: "z2", failing: [F.mirrorA: .tcpTimeout])
            + F.hosts(["a2", "a3", "b3", "b4"], zone: "z1", stale: true)
        let c = try #require(F.detect(rows).only)
        #expect(c.key == F.endpointDown(F.mirrorA))
        #expect(c.affectedHosts == 3 && c.totalHosts == 3)
    }

    @Test("host_local: one host against its five peers, evidence lists its failing endpoints")
    func hostLocalCounts() throws {
        let rows = F.fleet(replacing: F.host("a1", zone: "z1", failing: F.everything(.networkUnreachable)))
        let c = try #require(F.detect(rows).only)
        #expect(c.key == F.local("a1"))
        #expect(c.errorClass == .networkUnreachable)
        #expect(c.affectedHosts == 1 && c.totalHosts == 6)
        #expect(c.evidence.map(\.endpoint) == [F.mirrorA, F.mirrorB, F.hub])
        #expect(c.evidence.allSatisfy { $0.host == "a1" })
    }

    @Test("host_local needs most peers to reach what the host fails: two of three broken is no verdict")
    func hostLocalNeedsFinePeers() {
        let rows = F.hosts(["a1"], zone: "z1", failing: F.everything(.tcpTimeout)) + F.hosts(["b1"], zone: "z2", failing: F.everything(.tcpTimeout))
            + F.hosts(["c1"], zone: "z3")
        #expect(F.detect(rows).isEmpty)
        // Alone, a host has no peers: nothing can be said.
        #expect(F.detect(F.host("a1", failing: F.everything(.tcpTimeout))).isEmpty)
    }

    @Test("host_local judges peers on the host's failing endpoints, not on their own endpoint lists")
    func hostLocalPeersOnSameEndpoints() {
        // a1 probes only hub and mirror A, both of which every host fails: a1 is no worse than its peers.
        let rows = F.host("a1", zone: "z1", endpoints: [F.hub, F.mirrorA, F.mirrorB], failing: [F.hub: .tcpTimeout, F.mirrorA: .tcpTimeout])
            + F.hosts(["a2", "b1", "b2"], zone: nil, endpoints: [F.hub, F.mirrorA, F.mirrorB, "https://mirror-c", "https://mirror-d"],
                      failing: [F.hub: .tcpTimeout, F.mirrorA: .tcpTimeout])
        #expect(!F.detect(rows).contains { $0.kind == .hostLocal })
    }

    @Test("zone_network: affected and total are the zone's hosts; its hosts count toward nothing else")
    func zoneNetworkCounts() throws {
        let rows = F.hosts(["a1", "a2", "a3"], zone: "z1") + F.hosts(["b1", "b2", "b3"], zone: "z2", failing: F.everything(.tcpTimeout))
            + F.hosts(["c1", "c2", "c3"], zone: "z3")
        let c = try #require(F.detect(rows).only)
        #expect(c.key == F.zone("z2"))
        #expect(c.errorClass == .tcpTimeout)
        #expect(c.affectedHosts == 3 && c.totalHosts == 3)
        #expect(c.evidence.map(\.host) == ["b1", "b2", "b3"])
    }

    @Test("zone_network needs two broken hosts and most of the zone")
    func zoneNetworkThresholds() {
        // 2 of 4 hosts of z2 broken: two host problems, not a zone.
        let half = F.hosts(["a1", "a2", "a3"], zone: "z1") + F.hosts(["b1", "b2"], zone: "z2", failing: F.everything(.tcpTimeout))
            + F.hosts(["b3", "b4"], zone: "z2")
        #expect(F.detect(half).map(\.key) == [F.local("b1"), F.local("b2")])
        // 2 of 3: the zone.
        let most = F.hosts(["a1", "a2", "a3"], zone: "z1") + F.hosts(["b1", "b2"], zone: "z2", failing: F.everything(.tcpTimeout)) + F.hosts(["b3"], zone: "z2")
        #expect(F.detect(most).map(\.key) == [F.zone("z2")])
        // A one-host zone is a host.
        let single = F.hosts(["a1", "a2", "a3"], zone: "z1") + F.hosts(["b1"], zone: "z2", failing: F.everything(.tcpTimeout))
        #expect(F.detect(single).map(\.key) == [F.local("b1")])
    }

    @Test("rate_limit_exhausted: counts the egress group's hosts, evidence carries the quota")
    func rateLimitCounts() throws {
        let rows = F.hosts(["a1", "a2"], zone: "z1", egress: "nat-1", probes: [F.probe(F.hub, .rateLimited, detail: "HEAD /v2/library/alpine/manifests/latest answered 429", remaining: 0, source: "203.0.113.7")])
            + F.hosts(["a3"], zone: "z1", egress: "nat-1", probes: [F.probe(F.hub, remaining: 4, source: "203.0.113.7")])
            + F.hosts(["b1", "b2", "b3"], zone: "z2", egress: "nat-2", probes: [F.probe(F.hub, remaining: 70)])
        let c = try #require(F.detect(rows).only)
        #expect(c.key == F.quota("nat-1"))
        #expect(c.errorClass == .rateLimited)
        #expect(c.affectedHosts == 3 && c.totalHosts == 3)
        #expect(c.evidence.first?.detail == "HEAD /v2/library/alpine/manifests/latest answered 429; remaining 0 of 100 per 21600s (source 203.0.113.7)")
        #expect(c.evidence.last?.detail == "remaining 4 of 100 per 21600s (source 203.0.113.7)")
        // At the threshold is not under it.
        let atThreshold = F.hosts(["a1", "a2", "a3"], probes: [F.probe(F.hub, remaining: 10)])
        #expect(F.detect(atThreshold).isEmpty)
    }

    @Test("cert_expiring: counted from expiresAt against the aggregator's receive time, not the agent's daysLeft")
    func certificateClock() throws {
        let soon = F.t0.addingTimeInterval(3 * 86_400 + 60)
        let later = F.t0.addingTimeInterval(100 * 86_400)
        // The agent's clock is off: it says 100 days left, the certificate says 3.
        let wrongClockLate = F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 100, expiresAt: soon)]))
        let c = try #require(F.detect(wrongClockLate).only)
        #expect(c.key == F.cert(F.mirrorB))
        #expect(c.errorClass == nil)
        #expect(c.affectedHosts == 1 && c.totalHosts == 6)
        #expect(c.evidence.first?.detail.hasPrefix("certificate expires in 3 days (") == true)
        // Says 2 days, the certificate says 100: no warning.
        let wrongClockEarly = F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 2, expiresAt: later)]))
        #expect(F.detect(wrongClockEarly).isEmpty)
    }

    @Test("cert_expiring: an expired certificate is tls_expired; the day it expires is still a warning")
    func certificateExpired() throws {
        let expired = F.probe(F.mirrorA, .tlsExpired, detail: "certificate of mirror-a: SSL certificate problem: certificate has expired")
        var rows = F.fleet(replacing: F.hosts(["a1", "a2", "a3", "b1", "b2", "b3"].filter { $0.hasPrefix("a") }, zone: "z1", probes: [expired]))
        // The agent reports the certificate even when it refuses it.
        rows = rows.map { row in
            var r = row
            if r.probe.endpoint.url == F.mirrorA && r.probe.errorClass == .tlsExpired {
                r.probe.tls = TLSState(trusted: false, daysLeft: -2, expiresAt: F.t0.addingTimeInterval(-2 * 86_400))
            }
            return r
        }
        let cert = try #require(F.detect(rows).first { $0.kind == .certExpiring })
        #expect(cert.errorClass == .tlsExpired)
        #expect(cert.affectedHosts == 3)
        #expect(cert.evidence.first?.detail.hasPrefix("certificate expired (") == true)
        let today = F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 0)]))
        #expect(F.detect(today).map(\.key) == [F.cert(F.mirrorB)])
        let edge = F.fleet(replacing: F.host("a1", zone: "z1", probes: [F.probe(F.mirrorB, daysLeft: 14)]))
        #expect(F.detect(edge).map(\.key) == [F.cert(F.mirrorB)])
    }

    @Test("upstream_down_via_mirror: affected counts the hosts that reached the mirror, class is the manifest's")
    func viaMirrorCounts() throws {
        let rows = F.hosts(["a1", "a2", "a3"], zone: "z1", probes: Self.upstreamDown) + F.hosts(["b1", "b2", "b3"], zone: "z2", probes: Self.upstreamDown)
        let found = F.detect(rows)
        let via = try #require(found.first { $0.kind == .upstreamDownViaMirror })
        #expect(via.key == F.viaMirror(F.mirrorA))
        #expect(via.errorClass == .notFound)
        #expect(via.affectedHosts == 6 && via.totalHosts == 6)
        let hub = try #require(found.first { $0.kind == .endpointDown })
        #expect(hub.errorClass == .serverError)
    }

    @Test("a mirror's manifest step failing counts even when the host reaches no other endpoint")
    func manifestStepProvesReach() {
        let rows = F.hosts(["a1", "a2"], zone: "z1", endpoints: [F.mirrorA], probes: [Self.upstreamDown[1]])
            + F.hosts(["b1", "b2"], zone: "z2", endpoints: [F.mirrorA], probes: [Self.upstreamDown[1]])
        #expect(F.detect(rows).map(\.key) == [F.viaMirror(F.mirrorA)])
    }

    @Test("manifest-step judgement follows the agent's fields")
    func manifestStepRule() {
        #expect(FleetSnapshot.isManifestStepFailure(F.probe(F.mirrorA, .serverError, manifestStatus: 502)))
        #expect(FleetSnapshot.isManifestStepFailure(Self.hangingManifest))
        #expect(!FleetSnapshot.isManifestStepFailure(Self.mirrorPing503))
        #expect(!FleetSnapshot.isManifestStepFailure(F.probe(F.mirrorA, .authFailed, manifestStatus: 401)))
        #expect(!FleetSnapshot.isManifestStepFailure(F.probe(F.mirrorA, .rateLimited, manifestStatus: 429)))
        #expect(!FleetSnapshot.isManifestStepFailure(F.probe(F.mirrorA)))
        #expect(!FleetSnapshot.isManifestStepFailure(F.probe(F.mirrorA, .tcpTimeout)))
    }

    @Test("a mirror serving two registries is two endpoints: one registry's upstream down is its own outage")
    func mirrorPerRegistry() {
        let ghcr = F.probe(F.mirrorA, registry: "ghcr.io")
        let down = F.probe(F.mirrorA, .serverError, detail: "HEAD /v2/library/alpine/manifests/latest answered 502", manifestStatus: 502)
        let rows = F.hosts(["a1", "a2"], zone: "z1", probes: [ghcr, down]) + F.hosts(["b1", "b2"], zone: "z2", probes: [ghcr, down])
        #expect(F.detect(rows).map(\.key) == [F.viaMirror(F.mirrorA, registry: "docker.io")])
    }

    @Test("rows of one host for the same endpoint: the one received last counts")
    func newestRowWins() {
        let failing = F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.hosts(["b1", "b2"], zone: "z2", failing: [F.mirrorA: .tcpTimeout])
        let recovered = F.hosts(["a1", "a2", "b1", "b2"], zone: "z1").map { row in
            var r = row
            r.observedAt = F.t0.addingTimeInterval(30)
            return r
        }
        #expect(F.detect(failing + recovered).isEmpty)
        #expect(F.detect(recovered + failing).isEmpty)
    }

    @Test("thresholds: quorum settings are honoured")
    func settingsHonoured() {
        let rows = F.hosts(["a1", "a2"], zone: "z1", failing: [F.mirrorA: .tcpTimeout]) + F.hosts(["b1", "b2"], zone: "z2")
        var s = F.settings
        #expect(F.detect(rows, s).isEmpty)
        s.minHosts = 2
        #expect(F.detect(rows, s).isEmpty) // one zone of two
        s.minZones = 1
        #expect(F.detect(rows, s).map(\.key) == [F.endpointDown(F.mirrorA)])
        s.endpointFailShare = 0.75
        #expect(F.detect(rows, s).isEmpty)
    }

    @Test("settings from the configuration keep the contract keys and the documented defaults")
    func settingsFromConfig() {
        var c = AggregatorConfig().correlation
        c.openAfter = 4
        c.recoveryHold = .seconds(90)
        c.minHosts = 5
        c.minZones = 3
        let s = CorrelationSettings(c)
        #expect(s.openAfter == 4 && s.recoveryHold == .seconds(90) && s.minHosts == 5 && s.minZones == 3)
        #expect(s.window == .seconds(30) && s.staleAfter == 3)
        #expect(s.hostLocalShare == 0.6 && s.rateLimitThreshold == 10 && s.certWarningDays == 14 && s.evidenceLimit == 5)
        #expect(s.recoveryHoldSeconds == 90)
    }

    @Test("outage kinds carry the contract's names and survive JSON")
    func kindsAndCodable() throws {
        #expect(OutageKind.allCases.map(\.rawValue).sorted() == [
            "auth_broken", "cert_expiring", "dns_outage", "endpoint_down", "host_local", "rate_limit_exhausted",
            "upstream_down_via_mirror", "zone_network",
        ])
        let candidate = OutageCandidate(
            key: F.quota("nat-1"), errorClass: .rateLimited, affectedHosts: 3, totalHosts: 4,
            evidence: [OutageEvidence(host: "a1", zone: "z1", endpoint: F.hub, errorClass: .rateLimited, detail: "429")])
        let data = try JSONEncoder().encode(candidate)
        #expect(String(decoding: data, as: UTF8.self).contains("\"rate_limit_exhausted\""))
        #expect(try JSONDecoder().decode(OutageCandidate.self, from: data) == candidate)
    }

    @Test("detection is deterministic: row order does not matter")
    func orderIndependent() {
        let rows = F.hosts(["a1", "a2", "a3"], zone: "z1", probes: Self.upstreamDown) + F.hosts(["b1", "b2", "b3"], zone: "z2", probes: Self.upstreamDown)
            + F.host("c1", zone: "z3", egress: "nat-9", failing: [F.hub: .rateLimited], probes: [F.probe(F.mirrorB, daysLeft: 3)])
        #expect(F.detect(rows) == F.detect(rows.reversed()))
        #expect(F.detect(rows) == F.detect(rows.shuffled()))
    }
}

fileprivate extension Array {
    /// The single element, or nil when there are none or several.
    var only: Element? { count == 1 ? first : nil }
}
