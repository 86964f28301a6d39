import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing
import RegwatchTestSupport

/// The desired-order rule and canary selection, alone.
@Suite("Failover order and canaries")
struct FailoverOrderTests {
    typealias F = FailoverFleet

    static func desired(_ keys: [OutageKey], egress: String? = "nat-1", pools: [String: [MirrorSpec]] = F.pools) -> ([String: [String]], [OutageKey]) {
        let r = MirrorOrder.desired(pools: pools, egress: egress, outages: keys)
        return (r.mirrors, r.causes)
    }

    @Test("no outage: the preferred order")
    func preferredWithoutOutages() {
        let (m, causes) = Self.desired([])
        #expect(m == F.preferred)
        #expect(causes.isEmpty)
    }

    @Test("endpoint_down of a mirror removes it from that registry's list only")
    func endpointDownRemoves() {
        let down = F.key(.endpointDown, F.mirrorB, registry: "docker.io")
        let (m, causes) = Self.desired([down])
        #expect(m == ["docker.io": [F.mirrorA, F.mirrorAuth], "ghcr.io": [F.mirrorB]])
        #expect(causes == [down])
        // The same mirror down for ghcr.io leaves ghcr.io with no mirror (pulls go upstream).
        let both = [down, F.key(.endpointDown, F.mirrorB, registry: "ghcr.io")]
        #expect(Self.desired(both).0 == ["docker.io": [F.mirrorA, F.mirrorAuth], "ghcr.io": []])
    }

    @Test("upstream_down_via_mirror removes the mirror")
    func upstreamDownRemoves() {
        let k = F.key(.upstreamDownViaMirror, F.mirrorA)
        #expect(Self.desired([k]).0 == F.withoutA)
        #expect(Self.desired([k]).1 == [k])
    }

    @Test("endpoint_down of the upstream changes nothing (it is not in the pool)")
    func upstreamEndpointIgnored() {
        let (m, causes) = Self.desired([F.key(.endpointDown, F.hub)])
        #expect(m == F.preferred && causes.isEmpty)
    }

    @Test("rate_limit_exhausted puts authenticated mirrors first for that egress and registry only")
    func rateLimitAuthenticatedFirst() {
        let k = F.key(.rateLimitExhausted, F.hub, egress: "nat-1")
        let (m1, c1) = Self.desired([k], egress: "nat-1")
        #expect(m1 == ["docker.io": [F.mirrorAuth, F.mirrorA, F.mirrorB], "ghcr.io": [F.mirrorB]])
        #expect(c1 == [k])
        let (m2, c2) = Self.desired([k], egress: "nat-2")
        #expect(m2 == F.preferred && c2.isEmpty)
        #expect(Self.desired([k], egress: nil).0 == F.preferred)
        // Together with a mirror outage: the down mirror is gone, the authenticated one first.
        let both = [k, F.key(.endpointDown, F.mirrorA)]
        #expect(Self.desired(both, egress: "nat-1").0 == ["docker.io": [F.mirrorAuth, F.mirrorB], "ghcr.io": [F.mirrorB]])
    }

    @Test("rate_limit_exhausted without an authenticated mirror, or with it already first, is no change")
    func rateLimitNothingToDo() {
        let k = F.key(.rateLimitExhausted, F.hub, egress: "nat-1")
        let plain: [String: [MirrorSpec]] = ["docker.io": [MirrorSpec(url: F.mirrorA), MirrorSpec(url: F.mirrorB)]]
        #expect(Self.desired([k], pools: plain) == (["docker.io": [F.mirrorA, F.mirrorB]], []))
        let authFirst: [String: [MirrorSpec]] = ["docker.io": [MirrorSpec(url: F.mirrorAuth, authenticated: true), MirrorSpec(url: F.mirrorA)]]
        #expect(Self.desired([k], pools: authFirst) == (["docker.io": [F.mirrorAuth, F.mirrorA]], []))
    }

    @Test("kinds that never cause failover are ignored", arguments: [
        OutageKind.hostLocal, .zoneNetwork, .authBroken, .dnsOutage, .certExpiring,
    ])
    func nonFailoverKindsIgnored(kind: OutageKind) {
        #expect(!MirrorOrder.drivesFailover(kind))
        let (m, causes) = Self.desired([F.key(kind, F.mirrorA)])
        #expect(m == F.preferred && causes.isEmpty)
    }

    @Test("URLs match without trailing slashes")
    func trailingSlash() {
        let pools: [String: [MirrorSpec]] = ["docker.io": [MirrorSpec(url: F.mirrorA + "/"), MirrorSpec(url: F.mirrorB)]]
        #expect(Self.desired([F.key(.endpointDown, F.mirrorA)], pools: pools).0 == ["docker.io": [F.mirrorB]])
    }

    // MARK: Canaries

    @Test("canary count is ceil(share × hosts), at least one", arguments: [
        (10, 0.1, 1), (11, 0.1, 2), (30, 0.1, 3), (1, 0.1, 1), (5, 0.0, 1), (4, 1.0, 4), (100, 0.25, 25), (0, 0.1, 0),
    ])
    func canaryCount(hosts: Int, share: Double, expected: Int) {
        #expect(CanarySelection.count(hosts: hosts, share: share) == expected)
    }

    static func candidates(_ zones: [String: Int]) -> [CanarySelection.Candidate] {
        zones.flatMap { zone, n in (1...n).map { CanarySelection.Candidate(id: "\(zone)-h\($0)", zone: zone) } }
    }

    @Test("at least one canary per zone, even above the share")
    func onePerZone() {
        let c = CanarySelection.choose(Self.candidates(["z1": 8, "z2": 1, "z3": 1]), share: 0.1)
        #expect(c.count == 3)
        #expect(Set(c.map { String($0.prefix(2)) }) == ["z1", "z2", "z3"])
        // 30 hosts in 2 zones at 10%: 3 canaries covering both zones.
        let d = CanarySelection.choose(Self.candidates(["z1": 15, "z2": 15]), share: 0.1)
        #expect(d.count == 3 && Set(d.map { String($0.prefix(2)) }) == ["z1", "z2"])
        // Unlabelled hosts are one group of their own.
        let e = CanarySelection.choose(Self.candidates(["z1": 4]) + [.init(id: "x", zone: nil)], share: 0.1)
        #expect(e.count == 2 && e.contains("x"))
    }

    @Test("selection is deterministic whatever the input order")
    func deterministic() {
        let all = Self.candidates(["z1": 20, "z2": 20, "z3": 5])
        let first = CanarySelection.choose(all, share: 0.1)
        #expect(first.count == 5)
        for seed in 0..<20 {
            var g = SplitMix(seed: UInt64(seed))
            #expect(CanarySelection.choose(all.shuffled(using: &g), share: 0.1) == first)
        }
    }

    @Test("hosts whose hourly budget is spent are chosen last")
    func budgetLast() {
        var all = Self.candidates(["z1": 3])
        let preferredPick = CanarySelection.choose(all, share: 0.1)
        #expect(preferredPick.count == 1)
        for i in all.indices where preferredPick.contains(all[i].id) { all[i].canSwitch = false }
        let c = CanarySelection.choose(all, share: 0.1)
        #expect(c.count == 1 && c.isDisjoint(with: preferredPick))
    }
}
