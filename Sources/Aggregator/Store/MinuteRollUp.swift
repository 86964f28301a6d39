/// The per-minute roll-up both backends run in `maintain`: raw `probe_report` samples folded per
/// registry × endpoint × minute in Swift, then written to `probe_minute`, behind a watermark.
///
/// Read in Swift (``CompactJSONReader``) rather than through the `probe_sample` view: 200k reports (a
/// minute of 100k agents) took 0.96 s here and 5.7 s through the view, whose `->>` parses every
/// element once per column.
enum MinuteRollUp {
    /// `store_meta` key of the roll-up watermark: every minute before it has been rolled into `probe_minute`.
    static let rolledUntilKey = "probe_minute.rolledUntil"

    static func minuteStart(_ t: Double) -> Double {
        (t / 60).rounded(.down) * 60
    }

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

        mutating func add(errorClass cls: String, totalMs: Double?, bucket: Int?) {
            samples += 1
            if cls != "ok" {
                failures += 1
                classCounts[cls, default: 0] += 1
            }
            if let ms = totalMs {
                timed += 1
                sumMs += ms
                minMs = min(minMs ?? ms, ms)
                maxMs = max(maxMs ?? ms, ms)
                if let bucket { histogram.add(bucket: bucket, count: 1) }
            }
        }
    }

    /// Adds one `probe_report` row's samples (its `probes` text) to the minute it was received in.
    static func add(_ text: String, minute: Int64, into minutes: inout [Key: Aggregate]) {
        CompactJSONReader.forEachRow(text) { v in
            guard v.count == 5, let registry = v[0].string, let endpoint = v[1].string, let cls = v[2].string else { return }
            let key = Key(registry: registry, endpoint: endpoint, minute: minute)
            minutes[key, default: Aggregate()].add(errorClass: cls, totalMs: v[3].double, bucket: v[4].int)
        }
    }
}
