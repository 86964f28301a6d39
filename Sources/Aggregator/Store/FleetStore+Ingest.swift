import Foundation
import GRDB
import RegwatchShared

extension FleetStore {
    /// Writes a batch of reports and pull events in one transaction and returns what is now committed.
    ///
    /// Reports: the host row is upserted (`lastSeen = receivedAt`, connected) with its latest endpoint
    /// states (`host.probes`, see ``ProbeStateText``), its runtime states are replaced by the report's
    /// (rows for runtimes the report no longer has are deleted) and its probes are appended to history
    /// as one `probe_report` row. Newest wins: a report whose
    /// `cycleStartedAt` is not after the host's stored one (reordered or resent) only refreshes
    /// `lastSeen`; its probes are not added to history either, so a resent report is not counted twice.
    ///
    /// Pull events: `INSERT OR IGNORE` on `(hostId, seq)`, so resends are no-ops; every seq of the batch
    /// is returned in `committedSeqs` for acknowledgement. Nothing is returned (and nothing must be
    /// acknowledged) when this throws: the transaction was rolled back.
    ///
    /// Written for throughput: statements are prepared once per call and reused per row, values are
    /// bound directly (no record types), unchanged rows are updated in place (see `Ingester`), and JSON
    /// columns are written by `StoreJSON`.
    public func commit(_ batch: IngestBatch) throws(StoreError) -> IngestResult {
        if batch.isEmpty { return IngestResult() }
        return try write { db in
            var result = IngestResult()
            let ingest = try Ingester(db, arena: bindArena)
            for entry in batch.reports {
                if try ingest.report(entry, droppedByAgent: &result.eventsDroppedByAgents) {
                    result.reportsStored += 1
                } else {
                    result.reportsOutdated += 1
                }
            }
            for entry in batch.events {
                var seqs = result.committedSeqs[entry.hostID] ?? []
                seqs.reserveCapacity(seqs.count + entry.events.count)
                for event in entry.events {
                    if try ingest.event(event, hostID: entry.hostID, receivedAt: entry.receivedAt) {
                        result.eventsInserted += 1
                        result.insertedByOutcome[.init(result: event.result.rawValue, errorClass: event.errorClass.rawValue), default: 0] += 1
                    } else {
                        result.eventsDuplicate += 1
                    }
                    seqs.append(event.seq)
                }
                result.committedSeqs[entry.hostID] = seqs
            }
            return result
        }
    }
}

/// The prepared statements of one `commit`, looked up once and reused for every row of the batch.
///
/// A report is two row writes in steady state: the host row (with every endpoint's latest state) and
/// one `probe_report` row; runtime states are rewritten only when their hash changed. Rows are written
/// with `UPDATE … WHERE key` first and inserted only when that touched nothing (one B-tree seek instead
/// of an upsert's two), and the `DELETE` of runtimes a host stopped reporting runs only when
/// `host.runtimeCount` says some stored row was not rewritten. Values are bound in place (`BoundStatement`).
private final class Ingester {
    let db: Database
    let selectHost: BoundStatement
    let touchHost: BoundStatement
    let updateHost: BoundStatement
    let updateHostSameZone: BoundStatement
    let insertHost: BoundStatement
    let insertReport: BoundStatement
    let refreshRuntime: BoundStatement
    let updateRuntime: BoundStatement
    let insertRuntime: BoundStatement
    let deleteOtherRuntimes: BoundStatement
    let insertEvent: BoundStatement

    let arena: BindArena

    init(_ db: Database, arena: BindArena) throws {
        self.db = db
        self.arena = arena
        selectHost = try BoundStatement(db, sql: "SELECT lastCycleStartedAt, runtimeCount, zone, egress, probes, spoolDropped FROM host WHERE id = ?", arena: arena)
        touchHost = try BoundStatement(db, sql: "UPDATE host SET lastSeen = max(lastSeen, ?), connected = 1 WHERE id = ?", arena: arena)
        updateHost = try BoundStatement(db, sql: """
            UPDATE host SET labels = ?, zone = ?, egress = ?, agentVersion = ?, intervalSeconds = ?, appliedGeneration = ?,
                mirrorPools = ?, eventSources = ?, lastSeen = max(lastSeen, ?), lastCycleStartedAt = ?, connected = 1, lastReportSeq = ?,
                runtimeCount = ?, probes = ?, probesObservedAt = ?, spoolPending = ?, spoolDropped = ?
            WHERE id = ?
            """, arena: arena)
        // The usual case: zone and egress unchanged, so their indexes are not rewritten (SQLite updates
        // only the indexes of columns the statement assigns).
        updateHostSameZone = try BoundStatement(db, sql: """
            UPDATE host SET labels = ?, agentVersion = ?, intervalSeconds = ?, appliedGeneration = ?,
                mirrorPools = ?, eventSources = ?, lastSeen = max(lastSeen, ?), lastCycleStartedAt = ?, connected = 1, lastReportSeq = ?,
                runtimeCount = ?, probes = ?, probesObservedAt = ?, spoolPending = ?, spoolDropped = ?
            WHERE id = ?
            """, arena: arena)
        insertHost = try BoundStatement(db, sql: """
            INSERT INTO host (labels, zone, egress, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                              lastSeen, lastCycleStartedAt, connected, lastReportSeq, runtimeCount, probes, probesObservedAt,
                              spoolPending, spoolDropped, id, firstSeen)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arena: arena)
        insertReport = try BoundStatement(db, sql: "INSERT INTO probe_report (hostId, observedAt, probes) VALUES (?, ?, ?)", arena: arena)
        refreshRuntime = try BoundStatement(db, sql: """
            UPDATE runtime_state SET valid = ?, detail = ?, observedAt = ?, cycleStartedAt = ?
            WHERE hostId = ? AND runtime = ? AND hash = ? AND hash <> ''
            """, arena: arena)
        updateRuntime = try BoundStatement(db, sql: """
            UPDATE runtime_state SET mirrors = ?, valid = ?, detail = ?, hash = ?, observedAt = ?, cycleStartedAt = ?
            WHERE hostId = ? AND runtime = ?
            """, arena: arena)
        insertRuntime = try BoundStatement(db, sql: """
            INSERT INTO runtime_state (mirrors, valid, detail, hash, observedAt, cycleStartedAt, hostId, runtime)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arena: arena)
        deleteOtherRuntimes = try BoundStatement(db, sql: "DELETE FROM runtime_state WHERE hostId = ? AND cycleStartedAt <> ?", arena: arena)
        insertEvent = try BoundStatement(db, sql: """
            INSERT OR IGNORE INTO pull_event (hostId, seq, at, image, registry, endpoint, result, class, detail, source, receivedAt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arena: arena)
    }

    /// Applies one report; false when it was not newer than the stored one. `droppedByAgent` grows by
    /// the events the host's spool dropped since its stored report (its count restarts with the agent).
    func report(_ entry: IngestBatch.ReportEntry, droppedByAgent: inout Int) throws -> Bool {
        let r = entry.report
        let host = entry.hostID
        let cycle = r.cycleStartedAt.unixSeconds
        let received = entry.receivedAt.unixSeconds
        let stored = try selectHost.fetchOne(host) { row in
            (cycle: row.double(0), runtimes: row.int(1),
             sameZone: row.text(2, equals: r.host.zone) && row.text(3, equals: r.host.egress),
             previous: row.withText(4, ProbeStateText.Previous.init), spoolDropped: row.int(5))
        }
        if let stored, cycle <= stored.cycle {
            try touchHost.execute(received, host)
            return false
        }
        let exists = stored != nil

        let runtimeCount = IngestBatch.distinctCount(r.runtimes) { $0.runtime == $1.runtime }
        // A report that names a runtime twice must not fail the batch on the primary key: then even a
        // new host's rows are written update-first, and the last one wins.
        let runtimesUpdateFirst = exists || runtimeCount != r.runtimes.count
        let columns = entry.columns ?? IngestBatch.Columns(r)
        let labels = columns.labels, pools = columns.mirrorPools, sources = columns.eventSources
        let generation = Int64(bitPattern: r.appliedGeneration), seq = Int64(bitPattern: entry.seq)
        let latest = columns.latest.text(receivedAt: received, previous: stored?.previous ?? .init())
        let spoolPending = r.spool?.pending, spoolDropped = r.spool?.dropped
        if let dropped = spoolDropped {
            let before = stored?.spoolDropped ?? 0
            droppedByAgent += dropped >= before ? dropped - before : dropped
        }
        if let stored, stored.sameZone {
            try updateHostSameZone.execute(
                labels, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, runtimeCount, latest, received, spoolPending, spoolDropped, host)
        } else if exists {
            try updateHost.execute(
                labels, r.host.zone, r.host.egress, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, runtimeCount, latest, received, spoolPending, spoolDropped, host)
        } else {
            try insertHost.execute(
                labels, r.host.zone, r.host.egress, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, runtimeCount, latest, received, spoolPending, spoolDropped, host, received)
        }
        if !r.probes.isEmpty {
            try insertReport.execute(host, received, columns.samples)
        }

        var runtimesInserted = 0
        for rt in r.runtimes {
            let kind = rt.runtime.rawValue
            if exists {
                // Same hash, same mirrors: skip encoding and rewriting them.
                try refreshRuntime.execute(rt.valid, rt.detail, received, cycle, host, kind, rt.hash)
                if db.changesCount > 0 { continue }
            }
            let mirrors = StoreJSON.object(rt.mirrors)
            if runtimesUpdateFirst {
                try updateRuntime.execute(mirrors, rt.valid, rt.detail, rt.hash, received, cycle, host, kind)
            }
            if !runtimesUpdateFirst || db.changesCount == 0 {
                try insertRuntime.execute(mirrors, rt.valid, rt.detail, rt.hash, received, cycle, host, kind)
                runtimesInserted += 1
            }
        }

        // Rows not rewritten by this report exist only if something was inserted (the stored set lacked
        // it) or the stored set was larger than this report's.
        if let stored, runtimesInserted > 0 || stored.runtimes != runtimeCount {
            try deleteOtherRuntimes.execute(host, cycle)
        }
        return true
    }

    /// Inserts one pull event; false when `(hostID, seq)` was already stored.
    func event(_ e: PullEvent, hostID: String, receivedAt: Date) throws -> Bool {
        try insertEvent.execute(
            hostID, Int64(bitPattern: e.seq), e.at.unixSeconds, e.image, e.registry, e.endpoint,
            e.result.rawValue, e.errorClass.rawValue, e.detail, e.source, receivedAt.unixSeconds)
        return db.changesCount > 0
    }
}
