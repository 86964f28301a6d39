import Foundation
import RegwatchShared

/// How stored columns become the rows the API, correlation and failover read, written once for both
/// backends: each backend's query only fetches the columns (same order, same meaning) and hands them
/// here, so SQLite and PostgreSQL cannot drift apart in what an answer means.
enum StoreRows {
    /// A `host` row as `hosts()` selects it.
    struct HostColumns {
        var id: String
        var labels: String
        var lastSeen: Double
        var firstSeen: Double
        var appliedGeneration: Int64
        var agentVersion: String
        var intervalSeconds: Double
        var connected: Bool
        var eventSources: String
        /// A failing latest probe or an invalid runtime configuration.
        var problems: Bool
        var spoolPending: Int?
        var spoolDropped: Int?
    }

    static func host(_ c: HostColumns, now: Double, staleAfter: Int, decoder: JSONDecoder) -> HostRow {
        HostRow(
            id: c.id, labels: StoreJSON.decode([String: String].self, c.labels, default: [:], decoder: decoder),
            lastSeen: Date(unixSeconds: c.lastSeen), firstSeen: Date(unixSeconds: c.firstSeen),
            appliedGeneration: UInt64(bitPattern: c.appliedGeneration), agentVersion: c.agentVersion, intervalSeconds: c.intervalSeconds,
            connected: c.connected,
            eventSources: StoreJSON.decode([EventSourceStatus].self, c.eventSources, default: [], decoder: decoder),
            spool: c.spoolPending.map { SpoolStatus(pending: $0, dropped: c.spoolDropped ?? 0) },
            status: HostRow.status(now: now, lastSeen: c.lastSeen, intervalSeconds: c.intervalSeconds, staleAfter: staleAfter,
                                   connected: c.connected, problems: c.problems))
    }

    /// Every host's latest probes folded into one row per endpoint (``FleetStoring/endpoints(now:staleAfter:)``).
    struct Endpoints {
        struct Key: Hashable {
            var registry: String
            var endpoint: String
        }

        struct Acc {
            var role: Endpoint.Role
            var reporting = 0
            var failing = 0
            var classes: [String: Int] = [:]
            var latencies: [Double] = []
            var lowestRemaining: Int?
        }

        let now: Double
        let staleAfter: Int
        var acc: [Key: Acc] = [:]

        init(now: Double, staleAfter: Int) {
            self.now = now
            self.staleAfter = staleAfter
        }

        /// One host: its `probes` text, `lastSeen` and `intervalSeconds`.
        mutating func add(probes: String, lastSeen: Double, intervalSeconds: Double) {
            let fresh = !HostRow.isStale(now: now, lastSeen: lastSeen, intervalSeconds: intervalSeconds, staleAfter: staleAfter)
            ProbeStateText.forEachLatest(probes) { probe, _ in
                let key = Key(registry: probe.endpoint.registry, endpoint: probe.endpoint.url)
                var a = acc[key] ?? Acc(role: probe.endpoint.role)
                if fresh {
                    a.reporting += 1
                    if probe.errorClass != .ok {
                        a.failing += 1
                        a.classes[probe.errorClass.rawValue, default: 0] += 1
                    }
                    if let ms = probe.phases.totalMs { a.latencies.append(ms) }
                    if let remaining = probe.rateLimit?.remaining { a.lowestRemaining = min(a.lowestRemaining ?? remaining, remaining) }
                }
                acc[key] = a
            }
        }

        /// Ordered by registry, role (upstream first), endpoint.
        var rows: [EndpointRow] {
            acc.map { key, a in
                let sorted = a.latencies.sorted()
                let dominant = a.classes.max { l, r in l.value != r.value ? l.value < r.value : l.key > r.key }?.key
                return EndpointRow(
                    endpoint: key.endpoint, registry: key.registry, role: a.role, hostsReporting: a.reporting, hostsFailing: a.failing,
                    errorClass: dominant.map { ErrorClass(rawValue: $0) ?? .unknown } ?? .ok,
                    p50Ms: EndpointRow.quantile(0.5, ofSorted: sorted), p95Ms: EndpointRow.quantile(0.95, ofSorted: sorted),
                    lowestRateLimitRemaining: a.lowestRemaining)
            }.sorted { l, r in
                if l.registry != r.registry { return l.registry < r.registry }
                if l.role != r.role { return l.role == .upstream }
                return l.endpoint < r.endpoint
            }
        }
    }

    /// Hosts' latest probes as one row per host x endpoint (``FleetStoring/latestStates(now:staleAfter:host:)``),
    /// hosts added in id order.
    struct LatestStates {
        let now: Double
        let staleAfter: Int
        let decoder = JSONDecoder()
        /// Hosts share a handful of distinct label sets: each distinct text is decoded once.
        var labelsByText: [String: [String: String]] = [:]
        var rows: [LatestStateRow] = []

        init(now: Double, staleAfter: Int) {
            self.now = now
            self.staleAfter = staleAfter
        }

        mutating func add(host: String, labels text: String, lastSeen: Double, intervalSeconds: Double, probes: String, probesObservedAt: Double?) {
            let labels = labelsByText[text] ?? StoreJSON.decode([String: String].self, text, default: [:], decoder: decoder)
            labelsByText[text] = labels
            let stale = HostRow.isStale(now: now, lastSeen: lastSeen, intervalSeconds: intervalSeconds, staleAfter: staleAfter)
            let observedAt = Date(unixSeconds: probesObservedAt ?? lastSeen)
            // Elements are stored ordered by registry and endpoint, so host order is the whole order.
            ProbeStateText.forEachLatest(probes) { probe, since in
                rows.append(LatestStateRow(
                    hostID: host, labels: labels, probe: probe, observedAt: observedAt,
                    hostLastSeen: Date(unixSeconds: lastSeen), stale: stale,
                    classSince: since.map(Date.init(unixSeconds:))))
            }
        }
    }

    /// Hosts as the failover controller sees them, added in id order.
    struct FailoverHosts {
        let now: Double
        let staleAfter: Int
        let acks: [String: FailoverInputs.Ack]
        let decoder = JSONDecoder()
        // A fleet shares a handful of distinct pools and label sets: each distinct text is decoded once.
        var labelsByText: [String: [String: String]] = [:]
        var poolsByText: [String: [String: [MirrorSpec]]] = [:]
        var rows: [FailoverInputs.Host] = []

        init(now: Double, staleAfter: Int, acks: [String: FailoverInputs.Ack]) {
            self.now = now
            self.staleAfter = staleAfter
            self.acks = acks
        }

        mutating func add(id: String, labels labelsText: String, mirrorPools poolsText: String, appliedGeneration: Int64,
                          lastSeen: Double, intervalSeconds: Double) {
            let labels = labelsByText[labelsText] ?? StoreJSON.decode([String: String].self, labelsText, default: [:], decoder: decoder)
            let pools = poolsByText[poolsText] ?? StoreJSON.decode([String: [MirrorSpec]].self, poolsText, default: [:], decoder: decoder)
            labelsByText[labelsText] = labels
            poolsByText[poolsText] = pools
            rows.append(FailoverInputs.Host(
                id: id, labels: labels, mirrorPools: pools,
                appliedGeneration: UInt64(bitPattern: appliedGeneration), reportedAt: Date(unixSeconds: lastSeen), lastAck: acks[id],
                stale: HostRow.isStale(now: now, lastSeen: lastSeen, intervalSeconds: intervalSeconds, staleAfter: staleAfter)))
        }
    }

    /// A `probe_minute` row, columns in `probeMinutes()`'s order.
    static func probeMinute(
        registry: String, endpoint: String, minute: Double, samples: Int, failures: Int, failureClasses: String,
        timedSamples timed: Int, sumMs sum: Double, minMs: Double?, maxMs: Double?, buckets: String, decoder: JSONDecoder
    ) -> ProbeMinuteRow {
        let histogram = LatencyHistogram(json: buckets)
        // A bucket's middle may lie outside what was measured; the true quantile cannot.
        let clamp = { (v: Double?) in v.map { Swift.min(Swift.max($0, minMs ?? $0), maxMs ?? $0) } }
        return ProbeMinuteRow(
            registry: registry, endpoint: endpoint, minute: Date(unixSeconds: minute), samples: samples, failures: failures,
            failureClasses: StoreJSON.decode([String: Int].self, failureClasses, default: [:], decoder: decoder),
            timedSamples: timed, meanMs: timed > 0 ? sum / Double(timed) : nil, minMs: minMs, maxMs: maxMs,
            p50Ms: clamp(histogram.quantileMs(0.5)), p95Ms: clamp(histogram.quantileMs(0.95)))
    }

    /// A `pull_event` row, columns in `pullEvents()`'s order.
    static func pullEvent(seq: Int64, at: Double, image: String, registry: String, endpoint: String?, result: String, errorClass: String,
                          detail: String, source: String) -> PullEvent {
        PullEvent(
            seq: UInt64(bitPattern: seq), at: Date(unixSeconds: at), image: image, registry: registry, endpoint: endpoint,
            result: PullEvent.Result(rawValue: result) ?? .failure, errorClass: ErrorClass(rawValue: errorClass) ?? .unknown,
            detail: detail, source: source)
    }

    /// A `runtime_state` row; nil for a runtime this version does not know.
    static func runtime(_ kind: String, mirrors: String, valid: Bool, detail: String, hash: String, decoder: JSONDecoder) -> RuntimeConfigState? {
        guard let kind = RuntimeKind(rawValue: kind) else { return nil }
        return RuntimeConfigState(runtime: kind, mirrors: StoreJSON.decode([String: [String]].self, mirrors, default: [:], decoder: decoder),
                                  valid: valid, detail: detail, hash: hash)
    }

    /// An `outage` row; nil for a kind this version does not know.
    static func outage(
        id: Int64, kind: String, state: String, endpoint: String?, registry: String?, zone: String?, host: String?, egress: String?,
        errorClass: String?, affectedHosts: Int, totalHosts: Int, evidence: String, startedAt: Double, endedAt: Double?
    ) -> OutageRow? {
        guard let kind = OutageKind(rawValue: kind) else { return nil }
        let evidence = (try? JSONCoding.decoder().decode([OutageEvidence].self, from: Data(evidence.utf8))) ?? []
        return OutageRow(
            id: id, kind: kind, state: OutageRow.State(rawValue: state) ?? .active,
            endpoint: endpoint, registry: registry, zone: zone, host: host, egress: egress,
            errorClass: errorClass.map { ErrorClass(rawValue: $0) ?? .unknown }, affectedHosts: affectedHosts, totalHosts: totalHosts,
            evidence: evidence, startedAt: Date(unixSeconds: startedAt), endedAt: endedAt.map(Date.init(unixSeconds:)))
    }

    /// The columns `outage()` takes, in order, for both backends' `SELECT`.
    static let outageColumns = "id, kind, state, endpoint, registry, zone, host, egress, errorClass, affectedHosts, totalHosts, evidence, startedAt, endedAt"

    /// The failover ack of a `failover_last_ack` row; nil for an outcome this version does not know.
    static func ack(generation: Int64, outcome: String, detail: String, at: Double) -> FailoverInputs.Ack? {
        guard let outcome = FailoverAck.Outcome(rawValue: outcome) else { return nil }
        return .init(generation: UInt64(bitPattern: generation), outcome: outcome, reason: detail, at: Date(unixSeconds: at))
    }

    /// A `recoveredOutages` row.
    static func recovered(kind: String, endpoint: String?, registry: String?, zone: String?, host: String?, egress: String?,
                          endedAt: Double?) -> FailoverInputs.RecoveredOutage? {
        guard let kind = OutageKind(rawValue: kind), let endedAt else { return nil }
        return .init(key: OutageKey(kind: kind, endpoint: endpoint, registry: registry, zone: zone, host: host, egress: egress),
                     recoveredAt: Date(unixSeconds: endedAt))
    }
}
