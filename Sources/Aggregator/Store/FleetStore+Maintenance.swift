import Foundation
import GRDB

extension FleetStore {
    /// `store_meta` key of the roll-up watermark: every minute before it has been rolled into `probe_minute`.
    static let rolledUntilKey = "probe_minute.rolledUntil"

    /// What one `maintain` run did, for logs and metrics.
    public struct MaintenanceResult: Sendable, Equatable {
        /// `probe_minute` rows written (one per endpoint x minute rolled).
        public var minutesWritten = 0
        public var samplesDeleted = 0
        public var minutesDeleted = 0
        public var eventsDeleted = 0
    }

    /// Keeps the file bounded: rolls finished minutes of raw probe samples into `probe_minute`, deletes
    /// what is past retention, and runs a passive WAL checkpoint. Call it about once a minute; each run
    /// touches only the minutes since the previous one, so it stays cheap at any database size.
    ///
    /// - Roll-up: every complete minute (before `now`'s minute) not yet rolled is aggregated from
    ///   `probe_sample` (samples, failures, failing classes, sum/min/max, latency buckets) and written with
    ///   `INSERT OR REPLACE`. A watermark in `store_meta` makes each minute roll once; re-running with the
    ///   same `now` changes nothing. Samples are stamped with the aggregator's receive time, so none can
    ///   arrive for a minute already rolled (unless the wall clock steps back).
    /// - Retention: raw samples older than `rawRetention` (but never ones not yet rolled), minutes older
    ///   than `minuteRetention`, pull events whose time is older than `eventRetention`.
    @discardableResult
    public func maintain(
        now: Date, rawRetention: TimeInterval, minuteRetention: TimeInterval, eventRetention: TimeInterval
    ) throws(StoreError) -> MaintenanceResult {
        let result = try write { db in
            var result = MaintenanceResult()
            let currentMinute = Self.minuteStart(now.unixSeconds)
            var rolledUntil = try Double.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = ?", arguments: [Self.rolledUntilKey])
            if rolledUntil == nil {
                rolledUntil = try Double.fetchOne(db, sql: "SELECT MIN(observedAt) FROM probe_report").map(Self.minuteStart)
            }
            let from = rolledUntil ?? currentMinute
            if from < currentMinute {
                result.minutesWritten = try Self.rollUp(db, from: from, until: currentMinute)
                try db.execute(
                    sql: "INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, ?)",
                    arguments: [Self.rolledUntilKey, currentMinute])
                rolledUntil = currentMinute
            }

            let rawCutoff = min(now.unixSeconds - rawRetention, rolledUntil ?? currentMinute)
            // Counted in samples (probes), as the roll-up counts them; a report row holds several.
            result.samplesDeleted = try Int.fetchOne(
                db, sql: "SELECT coalesce(sum(json_array_length(probes)), 0) FROM probe_report WHERE observedAt < ?", arguments: [rawCutoff]) ?? 0
            try db.execute(sql: "DELETE FROM probe_report WHERE observedAt < ?", arguments: [rawCutoff])
            try db.execute(sql: "DELETE FROM probe_minute WHERE minute < ?", arguments: [now.unixSeconds - minuteRetention])
            result.minutesDeleted = db.changesCount
            try db.execute(sql: "DELETE FROM pull_event WHERE at < ?", arguments: [now.unixSeconds - eventRetention])
            result.eventsDeleted = db.changesCount
            return result
        }
        // Housekeeping only: a checkpoint that cannot run now runs next time (or SQLite's auto-checkpoint does).
        _ = try? checkpoint(.passive)
        return result
    }

    static func minuteStart(_ t: Double) -> Double {
        (t / 60).rounded(.down) * 60
    }

    /// Aggregates samples in `[from, until)` per registry x endpoint x minute; returns rows written.
    private static func rollUp(_ db: Database, from: Double, until: Double) throws -> Int {
        struct Key: Hashable {
            var registry: String
            var endpoint: String
            var minute: Int64
        }
        struct Aggregate {
            var samples = 0
            var failures = 0
            var timed = 0
            var sumMs = 0.0
            var minMs: Double?
            var maxMs: Double?
            var histogram = LatencyHistogram()
            var classCounts: [String: Int] = [:]
        }
        var minutes: [Key: Aggregate] = [:]
        // Grouped in SQL down to (class, bucket) so Swift sees a few rows per endpoint-minute, not every sample.
        let rows = try Row.fetchCursor(db, sql: """
            SELECT registry, endpoint, CAST(observedAt / 60 AS INTEGER) * 60 AS minute, class, bucket,
                   COUNT(*), COUNT(totalMs), TOTAL(totalMs), MIN(totalMs), MAX(totalMs)
            FROM probe_sample
            WHERE observedAt >= ? AND observedAt < ?
            GROUP BY registry, endpoint, minute, class, bucket
            """, arguments: [from, until])
        while let row = try rows.next() {
            let key = Key(registry: row[0], endpoint: row[1], minute: row[2])
            let cls: String = row[3]
            let bucket: Int? = row[4]
            let count: Int = row[5]
            let timed: Int = row[6]
            var agg = minutes[key] ?? Aggregate()
            agg.samples += count
            if cls != "ok" {
                agg.failures += count
                agg.classCounts[cls, default: 0] += count
            }
            if timed > 0 {
                agg.timed += timed
                agg.sumMs += row[7] as Double
                let lo: Double = row[8], hi: Double = row[9]
                agg.minMs = min(agg.minMs ?? lo, lo)
                agg.maxMs = max(agg.maxMs ?? hi, hi)
                if let bucket { agg.histogram.add(bucket: bucket, count: timed) }
            }
            minutes[key] = agg
        }
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
        return minutes.count
    }
}
