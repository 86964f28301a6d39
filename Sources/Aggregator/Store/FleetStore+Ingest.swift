import Foundation
import GRDB
import RegwatchShared

extension FleetStore {
    /// Writes a batch of reports and pull events in one transaction and returns what is now committed.
    ///
    /// Reports: the host row is upserted (`lastSeen = receivedAt`, connected), its latest endpoint and
    /// runtime states are replaced by the report's (rows for endpoints or runtimes the report no longer
    /// has are deleted) and every probe is appended to `probe_sample`. Newest wins: a report whose
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
                if try ingest.report(entry) { result.reportsStored += 1 } else { result.reportsOutdated += 1 }
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
/// Steady state is "the host and its endpoints exist": rows are written with `UPDATE … WHERE key`
/// first and inserted only when that touched nothing (one B-tree seek instead of an upsert's two), and
/// the `DELETE` of endpoints or runtimes a host stopped reporting runs only when `host.endpointCount` /
/// `runtimeCount` say some stored row was not rewritten. Values are bound in place (`BoundStatement`).
private final class Ingester {
    let db: Database
    let selectHost: BoundStatement
    let touchHost: BoundStatement
    let updateHost: BoundStatement
    let updateHostSameZone: BoundStatement
    let insertHost: BoundStatement
    let updateEndpoint: BoundStatement
    let insertEndpoint: BoundStatement
    let deleteOtherEndpoints: BoundStatement
    /// `INSERT INTO probe_sample` of 1...maxSampleRows rows at once, by row count, prepared on first use.
    private var insertSamples: [BoundStatement?] = Array(repeating: nil, count: Ingester.maxSampleRows + 1)
    static let maxSampleRows = 16
    let refreshRuntime: BoundStatement
    let updateRuntime: BoundStatement
    let insertRuntime: BoundStatement
    let deleteOtherRuntimes: BoundStatement
    let insertEvent: BoundStatement

    let arena: BindArena

    init(_ db: Database, arena: BindArena) throws {
        self.db = db
        self.arena = arena
        selectHost = try BoundStatement(db, sql: "SELECT lastCycleStartedAt, endpointCount, runtimeCount, zone, egress FROM host WHERE id = ?", arena: arena)
        touchHost = try BoundStatement(db, sql: "UPDATE host SET lastSeen = max(lastSeen, ?), connected = 1 WHERE id = ?", arena: arena)
        updateHost = try BoundStatement(db, sql: """
            UPDATE host SET labels = ?, zone = ?, egress = ?, agentVersion = ?, intervalSeconds = ?, appliedGeneration = ?,
                mirrorPools = ?, eventSources = ?, lastSeen = max(lastSeen, ?), lastCycleStartedAt = ?, connected = 1, lastReportSeq = ?,
                endpointCount = ?, runtimeCount = ?
            WHERE id = ?
            """, arena: arena)
        // The usual case: zone and egress unchanged, so their indexes are not rewritten (SQLite updates
        // only the indexes of columns the statement assigns).
        updateHostSameZone = try BoundStatement(db, sql: """
            UPDATE host SET labels = ?, agentVersion = ?, intervalSeconds = ?, appliedGeneration = ?,
                mirrorPools = ?, eventSources = ?, lastSeen = max(lastSeen, ?), lastCycleStartedAt = ?, connected = 1, lastReportSeq = ?,
                endpointCount = ?, runtimeCount = ?
            WHERE id = ?
            """, arena: arena)
        insertHost = try BoundStatement(db, sql: """
            INSERT INTO host (labels, zone, egress, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                              lastSeen, lastCycleStartedAt, connected, lastReportSeq, endpointCount, runtimeCount, id, firstSeen)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
            """, arena: arena)
        // Same parameter order for update and insert: values, then the key (hostId, registry, endpoint).
        // `classSince` keeps its time while the class stays the same (the class compared is the old one).
        updateEndpoint = try BoundStatement(db, sql: """
            UPDATE endpoint_state SET
                role = ?, class = ?, detail = ?, dnsMs = ?, connectMs = ?, tlsMs = ?, ttfbMs = ?, totalMs = ?,
                tlsTrusted = ?, tlsDaysLeft = ?, tlsExpiresAt = ?, rateLimitLimit = ?, rateLimitRemaining = ?,
                rateLimitWindowSeconds = ?, rateLimitSource = ?, manifestReference = ?, manifestStatus = ?, manifestDigest = ?,
                checkedAt = ?, observedAt = ?, cycleStartedAt = ?,
                classSince = CASE WHEN class = ? AND classSince IS NOT NULL THEN classSince ELSE ? END
            WHERE hostId = ? AND registry = ? AND endpoint = ?
            """, arena: arena)
        insertEndpoint = try BoundStatement(db, sql: """
            INSERT INTO endpoint_state (role, class, detail, dnsMs, connectMs, tlsMs, ttfbMs, totalMs,
                tlsTrusted, tlsDaysLeft, tlsExpiresAt, rateLimitLimit, rateLimitRemaining, rateLimitWindowSeconds, rateLimitSource,
                manifestReference, manifestStatus, manifestDigest, checkedAt, observedAt, cycleStartedAt, classSince, hostId, registry, endpoint)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE ? END, ?, ?, ?)
            """, arena: arena)
        deleteOtherEndpoints = try BoundStatement(db, sql: "DELETE FROM endpoint_state WHERE hostId = ? AND cycleStartedAt <> ?", arena: arena)
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

    /// Applies one report; false when it was not newer than the stored one.
    func report(_ entry: IngestBatch.ReportEntry) throws -> Bool {
        let r = entry.report
        let host = entry.hostID
        let cycle = r.cycleStartedAt.unixSeconds
        let received = entry.receivedAt.unixSeconds
        let stored = try selectHost.fetchOne(host) { row in
            (cycle: row.double(0), endpoints: row.int(1), runtimes: row.int(2),
             sameZone: row.text(3, equals: r.host.zone) && row.text(4, equals: r.host.egress))
        }
        if let stored, cycle <= stored.cycle {
            try touchHost.execute(received, host)
            return false
        }
        let exists = stored != nil

        let endpointCount = Self.distinctCount(r.probes) { $0.endpoint.registry == $1.endpoint.registry && $0.endpoint.url == $1.endpoint.url }
        let runtimeCount = Self.distinctCount(r.runtimes) { $0.runtime == $1.runtime }
        // A report that names one endpoint (or runtime) twice must not fail the batch on the primary
        // key: then even a new host's rows are written update-first, and the last one wins.
        let endpointsUpdateFirst = exists || endpointCount != r.probes.count
        let runtimesUpdateFirst = exists || runtimeCount != r.runtimes.count
        let json = entry.hostJSON ?? IngestBatch.HostJSON(r)
        let labels = json.labels, pools = json.mirrorPools, sources = json.eventSources
        let generation = Int64(bitPattern: r.appliedGeneration), seq = Int64(bitPattern: entry.seq)
        if let stored, stored.sameZone {
            try updateHostSameZone.execute(
                labels, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, endpointCount, runtimeCount, host)
        } else if exists {
            try updateHost.execute(
                labels, r.host.zone, r.host.egress, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, endpointCount, runtimeCount, host)
        } else {
            try insertHost.execute(
                labels, r.host.zone, r.host.egress, r.agentVersion, r.intervalSeconds, generation, pools, sources,
                received, cycle, seq, endpointCount, runtimeCount, host, received)
        }

        var endpointsInserted = 0
        for p in r.probes {
            let ep = p.endpoint
            let cls = p.errorClass.rawValue
            func write(_ statement: BoundStatement) throws {
                try statement.execute(
                    ep.role.rawValue, cls, p.detail,
                    p.phases.dnsMs, p.phases.connectMs, p.phases.tlsMs, p.phases.ttfbMs, p.phases.totalMs,
                    p.tls?.trusted, p.tls?.daysLeft, p.tls?.expiresAt?.unixSeconds,
                    p.rateLimit?.limit, p.rateLimit?.remaining, p.rateLimit?.windowSeconds, p.rateLimit?.source,
                    p.manifest?.reference, p.manifest?.status, p.manifest?.digest,
                    p.checkedAt.unixSeconds, received, cycle, cls, received, host, ep.registry, ep.url)
            }
            if endpointsUpdateFirst {
                try write(updateEndpoint)
            }
            if !endpointsUpdateFirst || db.changesCount == 0 {
                try write(insertEndpoint)
                endpointsInserted += 1
            }
        }
        // The probe history, a few rows per statement: one execution instead of one per probe.
        var rest = r.probes[...]
        while !rest.isEmpty {
            let rows = rest.prefix(Self.maxSampleRows)
            rest = rest.dropFirst(rows.count)
            try samples(rows.count).execute { bind in
                for p in rows {
                    let total = p.phases.totalMs
                    try bind(host); try bind(p.endpoint.registry); try bind(p.endpoint.url); try bind(p.errorClass.rawValue)
                    try bind(total); try bind(total.map(LatencyHistogram.bucket(forMs:))); try bind(received)
                }
            }
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

        if let stored {
            // Rows not rewritten by this report exist only if something was inserted (the stored set
            // lacked it) or the stored set was larger than this report's.
            if endpointsInserted > 0 || stored.endpoints != endpointCount {
                try deleteOtherEndpoints.execute(host, cycle)
            }
            if runtimesInserted > 0 || stored.runtimes != runtimeCount {
                try deleteOtherRuntimes.execute(host, cycle)
            }
        }
        return true
    }

    private func samples(_ rows: Int) throws -> BoundStatement {
        if let statement = insertSamples[rows] { return statement }
        let values = Array(repeating: "(?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
        let statement = try BoundStatement(db, sql: "INSERT INTO probe_sample (hostId, registry, endpoint, class, totalMs, bucket, observedAt) VALUES \(values)", arena: arena)
        insertSamples[rows] = statement
        return statement
    }

    /// Distinct elements by `same`, quadratic: reports carry a handful of probes and runtimes.
    static func distinctCount<T>(_ items: [T], _ same: (T, T) -> Bool) -> Int {
        var n = 0
        for i in items.indices where !items[..<i].contains(where: { same($0, items[i]) }) { n += 1 }
        return n
    }

    /// Inserts one pull event; false when `(hostID, seq)` was already stored.
    func event(_ e: PullEvent, hostID: String, receivedAt: Date) throws -> Bool {
        try insertEvent.execute(
            hostID, Int64(bitPattern: e.seq), e.at.unixSeconds, e.image, e.registry, e.endpoint,
            e.result.rawValue, e.errorClass.rawValue, e.detail, e.source, receivedAt.unixSeconds)
        return db.changesCount > 0
    }
}
