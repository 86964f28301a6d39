import Foundation
import RegwatchShared

/// The correlation rules for one evaluation window: from every host's latest probes to the outages they
/// show. Pure and stateless (no clock, no I/O): the same rows give the same candidates, in the same order.
///
/// The rules run from the narrowest explanation to the widest, and each explanation consumes its hosts:
/// 1. `zone_network`: the broken hosts of a zone whose peers in other zones reach the same endpoints;
/// 2. `host_local`: a broken host whose peers reach the endpoints it fails;
/// 3. per endpoint, with the remaining hosts: `upstream_down_via_mirror`, `dns_outage`, `auth_broken` or
///    `endpoint_down`, each needing the fleet quorum;
/// 4. `rate_limit_exhausted` per egress group and endpoint; 5. `cert_expiring` per endpoint URL.
/// A host explained by 1 or 2 counts toward nothing else, as neither failing nor healthy: its view says
/// something about itself, not about the endpoints. That is how "a single host can never cause a fleet
/// action" holds by construction.
public enum OutageDetector {
    typealias Host = FleetSnapshot.Host
    typealias EndpointRef = FleetSnapshot.EndpointRef

    /// All outages `rows` show in this window, ordered by key. Stale rows are ignored.
    public static func detect(rows: [LatestStateRow], settings: CorrelationSettings) -> [OutageCandidate] {
        let fleet = FleetSnapshot(rows: rows)
        let zones = zoneNetwork(fleet, settings)
        let local = hostLocal(fleet, settings, setAside: zones.hosts)
        let explained = zones.hosts.union(local.hosts)
        let remaining = fleet.sortedHosts.filter { !explained.contains($0.id) }
        let candidates = zones.candidates + local.candidates
            + endpointOutages(remaining, settings)
            + rateLimits(remaining, settings)
            + certificates(remaining, settings)
        return candidates.sorted { $0.key < $1.key }
    }

    // MARK: - zone_network

    /// A zone is down when at least `zoneMinHosts` of its hosts, and at least `zoneFailShare` of them, are
    /// broken (fail ≥ `hostLocalShare` of their endpoints), and at least one other zone is fine: most of
    /// its hosts that probe the endpoints the zone fails reach them. If every zone fails, it is not a zone.
    static func zoneNetwork(_ fleet: FleetSnapshot, _ s: CorrelationSettings) -> (candidates: [OutageCandidate], hosts: Set<String>) {
        let byZone = Dictionary(grouping: fleet.sortedHosts.filter { $0.zone != nil }, by: { $0.zone! })
        guard byZone.count >= 2 else { return ([], []) }
        var candidates: [OutageCandidate] = []
        var hosts: Set<String> = []
        for (zone, members) in byZone.sorted(by: { $0.key < $1.key }) {
            let broken = members.filter { $0.isBroken(share: s.hostLocalShare) }
            guard broken.count >= max(s.zoneMinHosts, 1), share(broken.count, of: members.count) >= s.zoneFailShare else { continue }
            let failed = broken.reduce(into: Set<EndpointRef>()) { $0.formUnion($1.failing) }
            let anotherZoneFine = byZone.contains { other, peers in other != zone && mostlyReach(peers, failed) }
            guard anotherZoneFine else { continue }
            hosts.formUnion(broken.map(\.id))
            let failures = broken.flatMap { h in h.failing.map { (h, $0, h.probes[$0]!) } }
            candidates.append(OutageCandidate(
                key: OutageKey(kind: .zoneNetwork, zone: zone),
                errorClass: FleetSnapshot.dominant(failures.map(\.2.errorClass)),
                affectedHosts: broken.count, totalHosts: members.count,
                evidence: broken.prefix(s.evidenceLimit).map { hostSummary($0) }))
        }
        return (candidates, hosts)
    }

    // MARK: - host_local

    /// A host is local-broken when it fails ≥ `hostLocalShare` of its endpoints and more than half of its
    /// peers (other hosts, outside a down zone, probing some of the endpoints it fails) mostly reach those
    /// endpoints. With no peer to compare, nothing can be said and nothing is flagged.
    static func hostLocal(_ fleet: FleetSnapshot, _ s: CorrelationSettings, setAside: Set<String>) -> (candidates: [OutageCandidate], hosts: Set<String>) {
        let eligible = fleet.sortedHosts.filter { !setAside.contains($0.id) }
        var candidates: [OutageCandidate] = []
        var hosts: Set<String> = []
        for host in eligible where host.isBroken(share: s.hostLocalShare) {
            let failed = host.failing
            let votes = eligible.filter { $0.id != host.id }.compactMap { $0.mostlyReaches(failed) }
            guard !votes.isEmpty, votes.filter({ $0 }).count * 2 > votes.count else { continue }
            hosts.insert(host.id)
            let failures = failed.sorted().map { (ref: $0, probe: host.probes[$0]!) }
            candidates.append(OutageCandidate(
                key: OutageKey(kind: .hostLocal, host: host.id),
                errorClass: FleetSnapshot.dominant(failures.map(\.probe.errorClass)),
                affectedHosts: 1, totalHosts: votes.count + 1,
                evidence: failures.prefix(s.evidenceLimit).map {
                    OutageEvidence(host: host.id, zone: host.zone, endpoint: $0.ref.url, errorClass: $0.probe.errorClass, detail: $0.probe.detail)
                }))
        }
        return (candidates, hosts)
    }

    // MARK: - endpoint_down, upstream_down_via_mirror, dns_outage, auth_broken

    /// Per endpoint, over the hosts not explained by a zone or host problem:
    /// - a failing host counts only if its failure is about the endpoint: it got an HTTP answer from
    ///   another URL, or (mirror manifest-step failure) from this one;
    /// - quorum: ≥ `minHosts` such hosts, ≥ `endpointFailShare` of the hosts probing the endpoint, and when
    ///   those hosts carry zone labels, spanning ≥ min(`minZones`, zones among them) zones (a fleet with a
    ///   single zone can still see an endpoint down; a fleet with two sees a one-zone failure as a path
    ///   problem, not an endpoint one);
    /// - kind: a mirror whose counted failures are mostly manifest-step failures →
    ///   `upstream_down_via_mirror`; else dominant class `dns_*` → `dns_outage`, `auth_failed` /
    ///   `access_denied` → `auth_broken`; else `endpoint_down`.
    static func endpointOutages(_ hosts: [Host], _ s: CorrelationSettings) -> [OutageCandidate] {
        let refs = Set(hosts.flatMap { $0.probes.keys }).sorted()
        var candidates: [OutageCandidate] = []
        for ref in refs {
            let reporters = hosts.filter { $0.probes[ref] != nil }
            let counted: [(host: Host, probe: ProbeResult)] = reporters.compactMap { host in
                let probe = host.probes[ref]!
                guard FleetSnapshot.isFailing(probe) else { return nil }
                let reachedThisMirror = probe.endpoint.role == .mirror && FleetSnapshot.isManifestStepFailure(probe)
                return reachedThisMirror || host.reachesOtherThan(url: ref.url) ? (host, probe) : nil
            }
            guard counted.count >= s.minHosts, counted.count > 0,
                  share(counted.count, of: reporters.count) >= s.endpointFailShare else { continue }
            let reporterZones = Set(reporters.compactMap(\.zone))
            if !reporterZones.isEmpty {
                let spanned = Set(counted.compactMap(\.host.zone)).count
                guard spanned >= min(s.minZones, reporterZones.count) else { continue }
            }
            let dominant = FleetSnapshot.dominant(counted.map(\.probe.errorClass))!
            let manifestStep = counted.filter { $0.probe.endpoint.role == .mirror && FleetSnapshot.isManifestStepFailure($0.probe) }.count
            let kind: OutageKind =
                if manifestStep * 2 > counted.count { .upstreamDownViaMirror }
                else if dominant == .dnsNXDomain || dominant == .dnsFailure { .dnsOutage }
                else if dominant == .authFailed || dominant == .accessDenied { .authBroken }
                else { .endpointDown }
            // The quorum was complete once the k-th counted host had reported its failure: when each
            // host first reported its current class (or, unknown, its latest report, which is later).
            let needed = max(s.minHosts, Int((s.endpointFailShare * Double(reporters.count)).rounded(.up)), 1)
            let times = counted.compactMap { $0.host.classSince[ref] ?? $0.host.observedAt[ref] }.sorted()
            candidates.append(OutageCandidate(
                key: OutageKey(kind: kind, endpoint: ref.url, registry: ref.registry),
                errorClass: dominant, affectedHosts: counted.count, totalHosts: reporters.count,
                evidence: counted.prefix(s.evidenceLimit).map {
                    OutageEvidence(host: $0.host.id, zone: $0.host.zone, endpoint: ref.url, errorClass: $0.probe.errorClass, detail: $0.probe.detail)
                },
                observedAt: times.count == counted.count ? times[min(needed, times.count) - 1] : nil))
        }
        return candidates
    }

    // MARK: - rate_limit_exhausted

    /// Per egress group and endpoint. A host's egress is its `egress` label, or failing that the
    /// `docker-ratelimit-source` the registry reported; a host with neither is in no group (whose quota
    /// it spends is unknown). A host is affected when its probe is `rate_limited` or its remaining quota
    /// is under `rateLimitThreshold`. The group's outage needs min(`minHosts`, hosts of the group probing
    /// the endpoint) affected hosts: one NAT is one quota, so the group is judged alone (other groups
    /// being healthy proves nothing), and a one-host group can be exhausted on its own, but in a larger
    /// group one host's reading (mislabelled, or read before a reset) is not enough.
    static func rateLimits(_ hosts: [Host], _ s: CorrelationSettings) -> [OutageCandidate] {
        struct Group: Hashable { var egress: String; var ref: EndpointRef }
        var groups: [Group: [(host: Host, probe: ProbeResult)]] = [:]
        for host in hosts {
            for (ref, probe) in host.probes {
                guard let egress = host.egress ?? probe.rateLimit?.source.flatMap({ $0.isEmpty ? nil : $0 }) else { continue }
                groups[Group(egress: egress, ref: ref), default: []].append((host, probe))
            }
        }
        var candidates: [OutageCandidate] = []
        for (group, members) in groups {
            let affected = members.filter { isExhausted($0.probe, s) }.sorted { $0.host.id < $1.host.id }
            guard !affected.isEmpty, affected.count >= min(s.minHosts, members.count) else { continue }
            candidates.append(OutageCandidate(
                key: OutageKey(kind: .rateLimitExhausted, endpoint: group.ref.url, registry: group.ref.registry, egress: group.egress),
                errorClass: .rateLimited, affectedHosts: affected.count, totalHosts: members.count,
                evidence: affected.prefix(s.evidenceLimit).map {
                    OutageEvidence(host: $0.host.id, zone: $0.host.zone, endpoint: group.ref.url, errorClass: $0.probe.errorClass, detail: quotaDetail($0.probe))
                }))
        }
        return candidates
    }

    static func isExhausted(_ probe: ProbeResult, _ s: CorrelationSettings) -> Bool {
        probe.errorClass == .rateLimited || (probe.rateLimit.map { $0.remaining < s.rateLimitThreshold } ?? false)
    }

    static func quotaDetail(_ probe: ProbeResult) -> String {
        guard let q = probe.rateLimit else { return probe.detail }
        let quota = "remaining \(q.remaining) of \(q.limit) per \(q.windowSeconds)s\(q.source.map { " (source \($0))" } ?? "")"
        return probe.errorClass == .rateLimited && !probe.detail.isEmpty ? "\(probe.detail); \(quota)" : quota
    }

    // MARK: - cert_expiring

    /// Per endpoint URL: open when any host not explained by a host or zone problem sees a certificate
    /// expiring within `certWarningDays` (or expired). No quorum: the certificate is a property of the
    /// endpoint, identical from every vantage point, so one observation is the fact; waiting for three
    /// hosts would only delay a warning that costs nothing to raise. (A host behind an intercepting proxy
    /// sees another certificate, but such a host fails its endpoints and is set aside as `host_local`.)
    /// Days are counted from the certificate's `expiresAt` to when the aggregator received the probe, so a
    /// host's wrong clock cannot raise it; the agent's `daysLeft` is the fallback.
    static func certificates(_ hosts: [Host], _ s: CorrelationSettings) -> [OutageCandidate] {
        struct Sighting { var host: Host; var days: Int; var expiresAt: Date?; var probe: ProbeResult }
        var byURL: [String: [String: Sighting]] = [:]
        for host in hosts {
            for (ref, probe) in host.probes {
                guard let tls = probe.tls else { continue }
                let days: Int? = tls.expiresAt.map { at in
                    Int((at.timeIntervalSince(host.observedAt[ref]!) / 86_400).rounded(.down))
                } ?? tls.daysLeft
                guard let days else { continue }
                if let seen = byURL[ref.url]?[host.id], seen.days <= days { continue }
                byURL[ref.url, default: [:]][host.id] = Sighting(host: host, days: days, expiresAt: tls.expiresAt, probe: probe)
            }
        }
        var candidates: [OutageCandidate] = []
        for (url, sightings) in byURL {
            let affected = sightings.values.filter { $0.days <= s.certWarningDays }.sorted { $0.host.id < $1.host.id }
            guard !affected.isEmpty else { continue }
            let soonest = affected.map(\.days).min()!
            candidates.append(OutageCandidate(
                key: OutageKey(kind: .certExpiring, endpoint: url),
                errorClass: soonest < 0 ? .tlsExpired : nil, affectedHosts: affected.count, totalHosts: sightings.count,
                evidence: affected.prefix(s.evidenceLimit).map {
                    OutageEvidence(host: $0.host.id, zone: $0.host.zone, endpoint: url, errorClass: $0.probe.errorClass, detail: certDetail($0.days, $0.expiresAt))
                }))
        }
        return candidates
    }

    static func certDetail(_ days: Int, _ expiresAt: Date?) -> String {
        let when = expiresAt.map { " (\($0.formatted(.iso8601)))" } ?? ""
        return days < 0 ? "certificate expired\(when)" : "certificate expires in \(days) days\(when)"
    }

    // MARK: - Helpers

    static func share(_ part: Int, of whole: Int) -> Double {
        whole == 0 ? 0 : Double(part) / Double(whole)
    }

    /// More than half of those `hosts` that probe any of `endpoints` mostly reach them.
    static func mostlyReach(_ hosts: [Host], _ endpoints: Set<EndpointRef>) -> Bool {
        let votes = hosts.compactMap { $0.mostlyReaches(endpoints) }
        return !votes.isEmpty && votes.filter { $0 }.count * 2 > votes.count
    }

    /// One line of evidence for a broken host: its most common failing class, with the first endpoint
    /// (in URL order) that failed that way.
    static func hostSummary(_ host: Host) -> OutageEvidence {
        let failures = host.failing.sorted().map { ($0, host.probes[$0]!) }
        let cls = FleetSnapshot.dominant(failures.map(\.1.errorClass)) ?? .unknown
        let sample = failures.first { $0.1.errorClass == cls }
        return OutageEvidence(host: host.id, zone: host.zone, endpoint: sample?.0.url, errorClass: cls, detail: sample?.1.detail ?? "")
    }
}
