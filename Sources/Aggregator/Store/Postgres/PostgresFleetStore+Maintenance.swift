import Foundation
import PostgresNIO
import RegwatchShared

extension PostgresFleetStore {
    /// ``FleetStore/maintain(now:rawRetention:minuteRetention:eventRetention:)`` on PostgreSQL: the same
    /// roll-up, watermark and retention. With several aggregators each may run it; the watermark, read
    /// again under the write transaction's row lock, lets one roll a minute and the others skip it.
    @discardableResult
    public func maintain(now: Date, rawRetention: TimeInterval, minuteRetention: TimeInterval, eventRetention: TimeInterval) throws(StoreError) -> MaintenanceResult {
        let currentMinute = MinuteRollUp.minuteStart(now.unixSeconds)
        let key = MinuteRollUp.rolledUntilKey
        let (watermark, minutes) = try read { c -> (Double?, [MinuteRollUp.Key: MinuteRollUp.Aggregate]?) in
            let watermark = try run(c, "SELECT value FROM store_meta WHERE key = \(key)").first?.decode(Double?.self)
            let first = try run(c, "SELECT min(observedAt) FROM probe_report").first?.decode(Double?.self)
            guard let from = watermark ?? first.map(MinuteRollUp.minuteStart), from < currentMinute else { return (watermark, nil) }
            var minutes: [MinuteRollUp.Key: MinuteRollUp.Aggregate] = [:]
            for row in try run(c, """
                SELECT (floor(observedAt / 60) * 60)::bigint, probes FROM probe_report
                WHERE observedAt >= \(from) AND observedAt < \(currentMinute)
                """) {
                let (minute, text) = try row.decode((Int64, String).self)
                MinuteRollUp.add(text, minute: minute, into: &minutes)
            }
            return (watermark, minutes)
        }
        // Retention deletes of a large fleet's hour of samples take longer than an ingest batch.
        return try write(answerTimeout: .seconds(300)) { c in
            var result = MaintenanceResult()
            // Locks the watermark's row (when there is one) until commit, so two aggregators roll in turn.
            var rolledUntil = try run(c, "SELECT value FROM store_meta WHERE key = \(key) FOR UPDATE").first?.decode(Double?.self)
            if let minutes, rolledUntil == watermark {
                for (k, agg) in minutes {
                    try run(c, """
                        INSERT INTO probe_minute (registry, endpoint, minute, samples, failures, timedSamples, sumMs, minMs, maxMs, buckets, failureClasses)
                        VALUES (\(k.registry), \(k.endpoint), \(Double(k.minute)), \(agg.samples), \(agg.failures), \(agg.timed), \(agg.sumMs),
                                \(agg.minMs), \(agg.maxMs), \(agg.histogram.json), \(StoreJSON.object(agg.classCounts)))
                        ON CONFLICT (registry, endpoint, minute) DO UPDATE SET samples = excluded.samples, failures = excluded.failures,
                            timedSamples = excluded.timedSamples, sumMs = excluded.sumMs, minMs = excluded.minMs, maxMs = excluded.maxMs,
                            buckets = excluded.buckets, failureClasses = excluded.failureClasses
                        """)
                }
                result.minutesWritten = minutes.count
                try run(c, """
                    INSERT INTO store_meta (key, value) VALUES (\(key), \(currentMinute))
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """)
                rolledUntil = currentMinute
            }
            let rawCutoff = min(now.unixSeconds - rawRetention, rolledUntil ?? currentMinute)
            // Counted in samples (probes), as the roll-up counts them; a report row holds several.
            result.samplesDeleted = try run(c, """
                WITH gone AS (DELETE FROM probe_report WHERE observedAt < \(rawCutoff) RETURNING probes)
                SELECT coalesce(sum(json_array_length(probes::json)), 0)::bigint FROM gone
                """).first?.decode(Int.self) ?? 0
            result.minutesDeleted = try changes(c, "DELETE FROM probe_minute WHERE minute < \(now.unixSeconds - minuteRetention)")
            try run(c, "DELETE FROM headroom_minute WHERE minute < \(now.unixSeconds - minuteRetention)")
            result.eventsDeleted = try changes(c, "DELETE FROM pull_event WHERE at < \(now.unixSeconds - eventRetention)")
            return result
        }
    }
}
