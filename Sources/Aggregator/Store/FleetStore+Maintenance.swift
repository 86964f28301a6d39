import Foundation
import GRDB

extension FleetStore {
    /// Keeps the file bounded: rolls finished minutes of raw probe samples into `probe_minute`, deletes
    /// what is past retention, and runs a passive WAL checkpoint. Call it about once a minute; each run
    /// touches only the minutes since the previous one, so it stays cheap at any database size.
    ///
    /// - Roll-up: every complete minute (before `now`'s minute) not yet rolled is aggregated from
    ///   `probe_report` (samples, failures, failing classes, sum/min/max, latency buckets) and written with
    ///   `INSERT OR REPLACE`. A watermark in `store_meta` makes each minute roll once; re-running with the
    ///   same `now` changes nothing. Samples are stamped with the aggregator's receive time, so none can
    ///   arrive for a minute already rolled (unless the wall clock steps back). The aggregation reads a
    ///   snapshot, outside the write transaction: a minute of 100k agents is 200k reports to read, and
    ///   ingest must not wait for that; the write then checks that the watermark did not move meanwhile.
    /// - Retention: raw samples older than `rawRetention` (but never ones not yet rolled), minutes older
    ///   than `minuteRetention` (headroom minutes too), pull events whose time is older than `eventRetention`.
    @discardableResult
    public func maintain(
        now: Date, rawRetention: TimeInterval, minuteRetention: TimeInterval, eventRetention: TimeInterval
    ) throws(StoreError) -> MaintenanceResult {
        let currentMinute = MinuteRollUp.minuteStart(now.unixSeconds)
        let (watermark, minutes) = try read { db -> (Double?, [MinuteRollUp.Key: MinuteRollUp.Aggregate]?) in
            let watermark = try Self.watermark(db)
            let from = try watermark ?? Double.fetchOne(db, sql: "SELECT MIN(observedAt) FROM probe_report").map(MinuteRollUp.minuteStart)
            guard let from, from < currentMinute else { return (watermark, nil) }
            return (watermark, try Self.rollUp(db, from: from, until: currentMinute))
        }
        let result = try write { db in
            var result = MaintenanceResult()
            var rolledUntil = try Self.watermark(db)
            // Another run rolled these minutes since the snapshot was read: its rows stand.
            if let minutes, rolledUntil == watermark {
                try Self.insert(minutes, db)
                result.minutesWritten = minutes.count
                try db.execute(
                    sql: "INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, ?)",
                    arguments: [MinuteRollUp.rolledUntilKey, currentMinute])
                rolledUntil = currentMinute
            }

            let rawCutoff = min(now.unixSeconds - rawRetention, rolledUntil ?? currentMinute)
            // Counted in samples (probes), as the roll-up counts them; a report row holds several.
            let deleted = try Int.fetchCursor(
                db, sql: "DELETE FROM probe_report WHERE observedAt < ? RETURNING json_array_length(probes)", arguments: [rawCutoff])
            while let samples = try deleted.next() { result.samplesDeleted += samples }
            try db.execute(sql: "DELETE FROM probe_minute WHERE minute < ?", arguments: [now.unixSeconds - minuteRetention])
            result.minutesDeleted = db.changesCount
            try db.execute(sql: "DELETE FROM headroom_minute WHERE minute < ?", arguments: [now.unixSeconds - minuteRetention])
            try db.execute(sql: "DELETE FROM pull_event WHERE at < ?", arguments: [now.unixSeconds - eventRetention])
            result.eventsDeleted = db.changesCount
            return result
        }
        // Housekeeping only: a checkpoint that cannot run now runs next time (or SQLite's auto-checkpoint does).
        _ = try? checkpoint(.passive)
        return result
    }

    private static func watermark(_ db: Database) throws -> Double? {
        try Double.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = ?", arguments: [MinuteRollUp.rolledUntilKey])
    }

    /// Aggregates the samples of reports received in `[from, until)` per registry x endpoint x minute
    /// (``MinuteRollUp``).
    private static func rollUp(_ db: Database, from: Double, until: Double) throws -> [MinuteRollUp.Key: MinuteRollUp.Aggregate] {
        var minutes: [MinuteRollUp.Key: MinuteRollUp.Aggregate] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT CAST(observedAt / 60 AS INTEGER) * 60, probes FROM probe_report WHERE observedAt >= ? AND observedAt < ?
            """, arguments: [from, until])
        while let row = try rows.next() { MinuteRollUp.add(row[1], minute: row[0], into: &minutes) }
        return minutes
    }

    private static func insert(_ minutes: [MinuteRollUp.Key: MinuteRollUp.Aggregate], _ db: Database) throws {
        let insert = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO probe_minute
                (registry, endpoint, minute, samples, failures, timedSamples, sumMs, minMs, maxMs, buckets, failureClasses)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (key, agg) in minutes {
            try insert.execute(arguments: [
                key.registry, key.endpoint, key.minute, agg.samples, agg.failures, agg.timed, agg.sumMs, agg.minMs, agg.maxMs,
                agg.histogram.json, StoreJSON.object(agg.classCounts),
            ])
        }
    }
}
