import Foundation
import NIOCore
import PostgresNIO
import RegwatchShared

extension PostgresFleetStore {
    /// ``FleetStore/commit(_:)``'s contract on PostgreSQL: one transaction, newest report wins, events
    /// inserted once per `(hostId, seq)` and every seq of the batch returned only after `COMMIT` answered.
    ///
    /// Statements are what cost here, not rows: the batch's hosts are read (and locked) in one query, then
    /// each table gets one statement for the whole batch, its rows passed as arrays and spread by
    /// `unnest` (a statement per row ran at a tenth of this rate: `make bench`).
    public func commit(_ batch: IngestBatch) throws(StoreError) -> IngestResult {
        if batch.isEmpty { return IngestResult() }
        return try write { c in
            var result = IngestResult()

            // The stored host rows, locked so two aggregators writing one host take turns; in id order, so
            // two batches sharing hosts lock them in the same order and never deadlock.
            struct Stored {
                var cycle: Double
                var runtimes: Int
                var zone: String?
                var egress: String?
                var probes: String
                var spoolDropped: Int?
            }
            var stored: [String: Stored] = [:]
            let ids = Array(Set(batch.reports.map(\.hostID)))
            if !ids.isEmpty {
                for row in try run(c, """
                    SELECT id, lastCycleStartedAt, runtimeCount, zone, egress, probes, spoolDropped FROM host WHERE id = ANY(\(ids)) ORDER BY id FOR UPDATE
                    """) {
                    let (id, cycle, runtimes, zone, egress, probes, dropped) = try row.decode((String, Double, Int, String?, String?, String, Int?).self)
                    stored[id] = Stored(cycle: cycle, runtimes: runtimes, zone: zone, egress: egress, probes: probes, spoolDropped: dropped)
                }
            }

            // Decided in order as on SQLite; the rows are gathered, one per host for the host table (its
            // newest report in the batch) and for the runtimes, one per stored report for probe_report.
            var hosts = HostRows()
            var seen = SeenRows()
            var reports = ReportRows()
            var runtimes: [String: (cycle: Double, states: [RuntimeConfigState])] = [:]
            for entry in batch.reports {
                let r = entry.report
                let host = entry.hostID
                let cycle = r.cycleStartedAt.unixSeconds
                let received = entry.receivedAt.unixSeconds
                let before = stored[host]
                if let before, cycle <= before.cycle {
                    seen.append(host, received)
                    result.reportsOutdated += 1
                    continue
                }
                let columns = entry.columns ?? IngestBatch.Columns(r)
                var previous = ProbeStateText.Previous()
                if var text = before?.probes { previous = text.withUTF8 { ProbeStateText.Previous($0) } }
                let latest = String(decoding: columns.latest.text(receivedAt: received, previous: previous), as: UTF8.self)
                let runtimeCount = IngestBatch.distinctCount(r.runtimes) { $0.runtime == $1.runtime }
                let spoolDropped = r.spool?.dropped
                if let dropped = spoolDropped {
                    let was = before?.spoolDropped ?? 0
                    result.eventsDroppedByAgents += dropped >= was ? dropped - was : dropped
                }
                hosts.set(host, HostRows.Row(
                    labels: String(decoding: columns.labels, as: UTF8.self), zone: r.host.zone, egress: r.host.egress, agentVersion: r.agentVersion,
                    interval: r.intervalSeconds, generation: Int64(bitPattern: r.appliedGeneration),
                    pools: String(decoding: columns.mirrorPools, as: UTF8.self), sources: String(decoding: columns.eventSources, as: UTF8.self),
                    received: received, cycle: cycle, seq: Int64(bitPattern: entry.seq), runtimeCount: runtimeCount, probes: latest,
                    spoolPending: r.spool?.pending, spoolDropped: spoolDropped))
                if !r.probes.isEmpty { reports.append(host, received, String(decoding: columns.samples, as: UTF8.self)) }
                // The report's runtimes replace the stored ones; one named twice keeps its last state.
                runtimes[host] = (cycle, r.runtimes)
                stored[host] = Stored(cycle: cycle, runtimes: runtimeCount, zone: r.host.zone, egress: r.host.egress, probes: latest,
                                      spoolDropped: spoolDropped)
                result.reportsStored += 1
            }

            var pending: [EventLoopFuture<PostgresQueryResult>] = []
            func send(_ query: PostgresQuery) { pending.append(c.query(query, logger: logger)) }
            // Every statement writes its rows in host id order: two aggregators' batches sharing hosts (new
            // ones included, which the read above could not lock) take their row locks in one order.
            if !hosts.order.isEmpty { send(hosts.upsert()) }
            // After the upsert: an outdated report of a host this batch inserts still moves its lastSeen.
            if !seen.ids.isEmpty {
                send("""
                    UPDATE host SET lastSeen = greatest(host.lastSeen, v.received), connected = true
                    FROM (SELECT id, max(received) AS received FROM unnest(\(seen.ids)::text[], \(seen.received)::float8[]) AS u(id, received)
                          GROUP BY id ORDER BY id) AS v
                    WHERE host.id = v.id
                    """)
            }
            if !reports.hosts.isEmpty {
                send("""
                    INSERT INTO probe_report (hostId, observedAt, probes)
                    SELECT * FROM unnest(\(reports.hosts)::text[], \(reports.observed)::float8[], \(reports.probes)::text[])
                    """)
            }
            var rt = RuntimeRows()
            for (host, r) in runtimes.sorted(by: { $0.key < $1.key }) {
                rt.replace(host, cycle: r.cycle)
                var last: [String: RuntimeConfigState] = [:]
                for state in r.states { last[state.runtime.rawValue] = state }
                for (_, state) in last.sorted(by: { $0.key < $1.key }) { rt.append(host, state, cycle: r.cycle, received: hosts.received(host)) }
            }
            if !rt.deleteHosts.isEmpty {
                send("""
                    DELETE FROM runtime_state USING unnest(\(rt.deleteHosts)::text[], \(rt.deleteCycles)::float8[]) AS v(hostId, cycle)
                    WHERE runtime_state.hostId = v.hostId AND runtime_state.cycleStartedAt < v.cycle
                    """)
            }
            if !rt.hosts.isEmpty {
                send("""
                    INSERT INTO runtime_state (hostId, runtime, mirrors, valid, detail, hash, observedAt, cycleStartedAt)
                    SELECT * FROM unnest(\(rt.hosts)::text[], \(rt.runtimes)::text[], \(rt.mirrors)::text[], \(rt.valid)::boolean[],
                                         \(rt.details)::text[], \(rt.hashes)::text[], \(rt.observed)::float8[], \(rt.cycles)::float8[])
                    ON CONFLICT (hostId, runtime) DO UPDATE SET mirrors = excluded.mirrors, valid = excluded.valid, detail = excluded.detail,
                        hash = excluded.hash, observedAt = excluded.observedAt, cycleStartedAt = excluded.cycleStartedAt
                    WHERE runtime_state.cycleStartedAt <= excluded.cycleStartedAt
                    """)
            }

            var events = EventRows()
            let arrived = batch.events.flatMap { entry in entry.events.map { (host: entry.hostID, event: $0, received: entry.receivedAt.unixSeconds) } }
            // Sorted by (host, seq), stable: of a seq sent twice, the first sent is the one inserted.
            let ordered = arrived.enumerated()
                .sorted { ($0.element.host, $0.element.event.seq, $0.offset) < ($1.element.host, $1.element.event.seq, $1.offset) }
            for x in ordered.map(\.element) { events.append(x.host, x.event, received: x.received) }
            let inserted = events.hosts.isEmpty ? nil : c.query("""
                INSERT INTO pull_event (hostId, seq, at, image, registry, endpoint, result, class, detail, source, receivedAt)
                SELECT h, s, a, i, r, CASE WHEN en THEN NULL ELSE e END, o, k, d, src, rc
                FROM unnest(\(events.hosts)::text[], \(events.seqs)::int8[], \(events.at)::float8[], \(events.images)::text[],
                            \(events.registries)::text[], \(events.endpoints)::text[], \(events.endpointNull)::boolean[], \(events.results)::text[],
                            \(events.classes)::text[], \(events.details)::text[], \(events.sources)::text[], \(events.received)::float8[])
                    AS v(h, s, a, i, r, e, en, o, k, d, src, rc)
                ON CONFLICT (hostId, seq) DO NOTHING
                RETURNING hostId, seq
                """, logger: logger)
            // Every answer, so a failure is the first statement's (the ones after it only say the
            // transaction is aborted) and nothing is left in flight when the transaction ends.
            var firstError: (any Error)?
            for f in pending + (inserted.map { [$0] } ?? []) {
                do { _ = try writer.wait(f, on: c) } catch { firstError = firstError ?? error }
            }
            if let firstError { throw firstError }
            if let inserted {
                var fresh = Set<EventRows.Key>()
                for row in try writer.wait(inserted, on: c).rows {
                    let (host, seq) = try row.decode((String, Int64).self)
                    fresh.insert(EventRows.Key(host: host, seq: UInt64(bitPattern: seq)))
                }
                for (host, e, _) in arrived {
                    // In arrival order: of a seq sent twice in one batch, the first counts as inserted.
                    if fresh.remove(EventRows.Key(host: host, seq: e.seq)) != nil {
                        result.eventsInserted += 1
                        result.insertedByOutcome[.init(result: e.result.rawValue, errorClass: e.errorClass.rawValue), default: 0] += 1
                    } else {
                        result.eventsDuplicate += 1
                    }
                    result.committedSeqs[host, default: []].append(e.seq)
                }
            }
            return result
        }
    }
}

/// The batch's host rows as arrays, one per host (its newest report), for one `INSERT … SELECT FROM unnest`.
struct HostRows {
    struct Row {
        var labels: String
        var zone: String?
        var egress: String?
        var agentVersion: String
        var interval: Double
        var generation: Int64
        var pools: String
        var sources: String
        var received: Double
        var cycle: Double
        var seq: Int64
        var runtimeCount: Int
        var probes: String
        var spoolPending: Int?
        var spoolDropped: Int?
    }

    var order: [String] = []
    var rows: [String: Row] = [:]
    /// When the batch first heard from each host: its `firstSeen` if it is new.
    var first: [String: Double] = [:]

    mutating func set(_ host: String, _ row: Row) {
        if rows[host] == nil { order.append(host) }
        first[host] = min(first[host] ?? row.received, row.received)
        rows[host] = row
    }

    func received(_ host: String) -> Double { rows[host]?.received ?? 0 }

    /// Inserted, or updated only if this report is newer than what another aggregator may have committed
    /// for the host since the read above (a host new to this batch is not locked). Nullable columns go as
    /// a value and a null flag: postgres-nio binds no arrays of optionals.
    func upsert() -> PostgresQuery {
        let order = order.sorted()
        let r = order.map { rows[$0]! }
        let firstSeen = order.map { first[$0]! }
        return """
            INSERT INTO host (id, labels, zone, egress, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                              firstSeen, lastSeen, lastCycleStartedAt, connected, lastReportSeq, runtimeCount, probes, probesObservedAt,
                              spoolPending, spoolDropped)
            SELECT id, labels, CASE WHEN zn THEN NULL ELSE zone END, CASE WHEN en THEN NULL ELSE egress END, agentVersion, intervalSeconds,
                   appliedGeneration, mirrorPools, eventSources, firstSeen, received, cycle, true, seq, runtimeCount, probes, received,
                   CASE WHEN pn THEN NULL ELSE pending END, CASE WHEN dn THEN NULL ELSE dropped END
            FROM unnest(\(order)::text[], \(r.map(\.labels))::text[], \(r.map { $0.zone ?? "" })::text[], \(r.map { $0.zone == nil })::boolean[],
                        \(r.map { $0.egress ?? "" })::text[], \(r.map { $0.egress == nil })::boolean[], \(r.map(\.agentVersion))::text[],
                        \(r.map(\.interval))::float8[], \(r.map(\.generation))::int8[], \(r.map(\.pools))::text[], \(r.map(\.sources))::text[],
                        \(firstSeen)::float8[], \(r.map(\.received))::float8[], \(r.map(\.cycle))::float8[], \(r.map(\.seq))::int8[],
                        \(r.map { Int64($0.runtimeCount) })::int8[], \(r.map(\.probes))::text[],
                        \(r.map { Int64($0.spoolPending ?? 0) })::int8[], \(r.map { $0.spoolPending == nil })::boolean[],
                        \(r.map { Int64($0.spoolDropped ?? 0) })::int8[], \(r.map { $0.spoolDropped == nil })::boolean[])
                AS v(id, labels, zone, zn, egress, en, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                     firstSeen, received, cycle, seq, runtimeCount, probes, pending, pn, dropped, dn)
            ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, zone = excluded.zone, egress = excluded.egress,
                agentVersion = excluded.agentVersion, intervalSeconds = excluded.intervalSeconds,
                appliedGeneration = excluded.appliedGeneration, mirrorPools = excluded.mirrorPools, eventSources = excluded.eventSources,
                lastSeen = greatest(host.lastSeen, excluded.lastSeen), lastCycleStartedAt = excluded.lastCycleStartedAt, connected = true,
                lastReportSeq = excluded.lastReportSeq, runtimeCount = excluded.runtimeCount, probes = excluded.probes,
                probesObservedAt = excluded.probesObservedAt, spoolPending = excluded.spoolPending, spoolDropped = excluded.spoolDropped
            WHERE host.lastCycleStartedAt < excluded.lastCycleStartedAt
            """
    }
}

/// Outdated reports: only their host's `lastSeen` and connection flag move.
struct SeenRows {
    var ids: [String] = []
    var received: [Double] = []
    mutating func append(_ id: String, _ at: Double) {
        ids.append(id)
        received.append(at)
    }
}

/// `probe_report` rows, one per stored report with probes.
struct ReportRows {
    var hosts: [String] = []
    var observed: [Double] = []
    var probes: [String] = []
    mutating func append(_ host: String, _ at: Double, _ samples: String) {
        hosts.append(host)
        observed.append(at)
        probes.append(samples)
    }
}

/// The runtimes of each host's newest report, and which hosts' older runtime rows go.
struct RuntimeRows {
    var deleteHosts: [String] = []
    var deleteCycles: [Double] = []
    var hosts: [String] = []
    var runtimes: [String] = []
    var mirrors: [String] = []
    var valid: [Bool] = []
    var details: [String] = []
    var hashes: [String] = []
    var observed: [Double] = []
    var cycles: [Double] = []

    mutating func replace(_ host: String, cycle: Double) {
        deleteHosts.append(host)
        deleteCycles.append(cycle)
    }

    mutating func append(_ host: String, _ state: RuntimeConfigState, cycle: Double, received: Double) {
        hosts.append(host)
        runtimes.append(state.runtime.rawValue)
        mirrors.append(StoreJSON.object(state.mirrors))
        valid.append(state.valid)
        details.append(state.detail)
        hashes.append(state.hash)
        observed.append(received)
        cycles.append(cycle)
    }
}

/// `pull_event` rows.
struct EventRows {
    struct Key: Hashable {
        var host: String
        var seq: UInt64
    }
    var hosts: [String] = []
    var seqs: [Int64] = []
    var at: [Double] = []
    var images: [String] = []
    var registries: [String] = []
    var endpoints: [String] = []
    var endpointNull: [Bool] = []
    var results: [String] = []
    var classes: [String] = []
    var details: [String] = []
    var sources: [String] = []
    var received: [Double] = []

    mutating func append(_ host: String, _ e: PullEvent, received at: Double) {
        hosts.append(host)
        seqs.append(Int64(bitPattern: e.seq))
        self.at.append(e.at.unixSeconds)
        images.append(e.image)
        registries.append(e.registry)
        endpoints.append(e.endpoint ?? "")
        endpointNull.append(e.endpoint == nil)
        results.append(e.result.rawValue)
        classes.append(e.errorClass.rawValue)
        details.append(e.detail)
        sources.append(e.source)
        received.append(at)
    }
}
