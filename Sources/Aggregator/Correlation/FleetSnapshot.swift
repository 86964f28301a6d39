import Foundation
import RegwatchShared

/// The fleet as one evaluation window sees it: the non-stale hosts, each with its latest probe of every
/// endpoint, indexed the ways the rules ask (per host, per zone, per endpoint), plus the few judgements
/// about a single probe that every rule shares.
///
/// Stale hosts are dropped here, once, so no rule can count them by accident: a host that stopped
/// reporting is neither evidence of an outage nor evidence of health.
struct FleetSnapshot: Sendable {
    /// An endpoint as a runtime uses it: the URL serving one registry. A mirror serving two registries is
    /// two of these, because its upstream may be down for one and not the other.
    struct EndpointRef: Hashable, Comparable, Sendable {
        var registry: String
        var url: String

        static func < (lhs: EndpointRef, rhs: EndpointRef) -> Bool {
            (lhs.url, lhs.registry) < (rhs.url, rhs.registry)
        }
    }

    /// One non-stale host and its latest probe per endpoint.
    struct Host: Sendable {
        var id: String
        var zone: String?
        var egress: String?
        var probes: [EndpointRef: ProbeResult]
        /// When the aggregator received each probe (aggregator clock, unlike the probe's `checkedAt`).
        var observedAt: [EndpointRef: Date]
        /// Since when each probe has had its current class (the first report of it), where known.
        var classSince: [EndpointRef: Date] = [:]

        var endpoints: Set<EndpointRef> { Set(probes.keys) }

        /// Endpoints this host fails (see ``FleetSnapshot/isFailing(_:)``).
        var failing: Set<EndpointRef> { Set(probes.filter { FleetSnapshot.isFailing($0.value) }.keys) }

        /// The share of its endpoints this host fails (0 with no endpoints).
        var failingShare: Double {
            probes.isEmpty ? 0 : Double(failing.count) / Double(probes.count)
        }

        /// Fails at least `share` of its endpoints: as a vantage point, this host is broken.
        func isBroken(share: Double) -> Bool {
            !probes.isEmpty && failingShare >= share
        }

        /// Fails fewer than half of those of `endpoints` it probes, i.e. mostly reaches them; nil when it
        /// probes none of them (it has no say).
        func mostlyReaches(_ endpoints: Set<EndpointRef>) -> Bool? {
            let common = endpoints.filter { probes[$0] != nil }
            guard !common.isEmpty else { return nil }
            let failed = common.filter { FleetSnapshot.isFailing(probes[$0]!) }.count
            return failed * 2 < common.count
        }

        /// Got an HTTP answer from an endpoint at another URL than `url`: the host's network works, so a
        /// failure of `url` is about `url`.
        func reachesOtherThan(url: String) -> Bool {
            probes.contains { ref, probe in ref.url != url && FleetSnapshot.gotHTTPAnswer(probe) }
        }
    }

    /// Non-stale hosts by id.
    let hosts: [String: Host]

    /// Drops stale rows; when a host has two rows for the same endpoint, the one received last wins.
    init(rows: [LatestStateRow]) {
        var hosts: [String: Host] = [:]
        for row in rows where !row.stale {
            let ref = EndpointRef(registry: row.probe.endpoint.registry, url: row.probe.endpoint.url)
            var host = hosts[row.hostID] ?? Host(
                id: row.hostID, zone: Self.label(row.zone), egress: Self.label(row.egress), probes: [:], observedAt: [:])
            if let seen = host.observedAt[ref], seen > row.observedAt { continue }
            host.probes[ref] = row.probe
            host.observedAt[ref] = row.observedAt
            host.classSince[ref] = row.classSince.map { min($0, row.observedAt) }
            hosts[row.hostID] = host
        }
        self.hosts = hosts
    }

    /// Hosts in id order, for deterministic output.
    var sortedHosts: [Host] { hosts.values.sorted { $0.id < $1.id } }

    private static func label(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    // MARK: - Judgements about one probe

    /// The endpoint did not work for this host. `rate_limited` is not a failure here: the endpoint answered
    /// and the problem is the egress group's quota, which has its own kind (and must not make Docker Hub
    /// look down when one NAT has used its 100 pulls).
    static func isFailing(_ probe: ProbeResult) -> Bool {
        probe.errorClass != .ok && probe.errorClass != .rateLimited
    }

    /// Classes that are only possible after the endpoint answered over HTTP (the agent's `/v2/`, token or
    /// manifest step got a status). DNS, TCP, TLS, proxy and timeout classes say nothing about reach.
    static let httpAnswerClasses: Set<ErrorClass> = [
        .ok, .rateLimited, .authFailed, .accessDenied, .notRegistry, .notFound, .serverError,
    ]

    /// The host's packets got to this endpoint and back: it answered HTTP.
    static func gotHTTPAnswer(_ probe: ProbeResult) -> Bool {
        httpAnswerClasses.contains(probe.errorClass) || probe.manifest?.status != nil
    }

    /// The probe passed DNS, TCP, TLS, `/v2/` and auth and failed only at the probe image's manifest.
    ///
    /// From `RegistryProber`: `manifest` is set only once the manifest `HEAD` got an HTTP status, and the
    /// status-derived class follows, so `manifest.status != nil` with a failing class is "answered `/v2/`,
    /// manifest failed" (a pull-through cache answers 404/5xx when its upstream is gone). When the `HEAD`
    /// itself times out or breaks (a cache waiting on a dead upstream), the agent returns before setting
    /// `manifest`, with a detail starting `HEAD manifest `; that form counts too. 401/403/429 on the
    /// manifest are auth and quota problems, not the upstream's, and are left out.
    static func isManifestStepFailure(_ probe: ProbeResult) -> Bool {
        guard isFailing(probe), ![.authFailed, .accessDenied].contains(probe.errorClass) else { return false }
        if probe.manifest?.status != nil { return true }
        return probe.manifest == nil && probe.detail.hasPrefix("HEAD manifest ")
    }

    /// The most common class in `classes`; ties go to the class listed first in `ErrorClass`, so the
    /// answer does not depend on row order.
    static func dominant(_ classes: some Sequence<ErrorClass>) -> ErrorClass? {
        var counts: [ErrorClass: Int] = [:]
        for c in classes { counts[c, default: 0] += 1 }
        let order = Dictionary(uniqueKeysWithValues: ErrorClass.allCases.enumerated().map { ($1, $0) })
        return counts.max { a, b in
            a.value != b.value ? a.value < b.value : order[a.key, default: .max] > order[b.key, default: .max]
        }?.key
    }
}
