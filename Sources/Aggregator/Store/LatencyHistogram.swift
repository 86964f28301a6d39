import Foundation

/// A latency distribution as counts in fixed log-scale buckets, the compact form `probe_minute` keeps.
///
/// Why fixed buckets: per-minute roll-ups must merge (minutes into hours, endpoints into registries) by
/// adding counts, which exact quantiles cannot do, and a bucket index is computed once per sample at
/// ingest so the roll-up is a `GROUP BY`. Four buckets per doubling from 0.1 ms make neighbouring bounds
/// 19% apart, so a quantile read back at a bucket's geometric middle is within about 9% of the true
/// value: good enough for p50/p95 on a dashboard and for "latency doubled" decisions.
public struct LatencyHistogram: Sendable, Equatable {
    public static let bucketsPerDoubling = 4
    /// Upper bound of bucket 0; everything at or below it (and anything not a positive number) lands there.
    public static let baseMs = 0.1
    /// Bucket `bucketCount - 1` is open-ended; its lower bound is about 1,200 s, beyond any probe timeout.
    public static let bucketCount = 96

    /// Sample count per bucket index; absent buckets are empty.
    public private(set) var counts: [Int: Int] = [:]
    public private(set) var total = 0

    public init() {}

    public init(counts: [Int: Int]) {
        for (i, n) in counts where n > 0 { add(bucket: i, count: n) }
    }

    /// The bucket index of a latency: bucket `i > 0` covers `(baseMs·2^((i-1)/4), baseMs·2^(i/4)]`.
    public static func bucket(forMs ms: Double) -> Int {
        guard ms > baseMs, ms.isFinite else { return ms.isInfinite && ms > 0 ? bucketCount - 1 : 0 }
        let i = Int((log2(ms / baseMs) * Double(bucketsPerDoubling)).rounded(.up))
        return min(max(i, 0), bucketCount - 1)
    }

    public static func upperBoundMs(bucket i: Int) -> Double {
        baseMs * exp2(Double(i) / Double(bucketsPerDoubling))
    }

    /// The value a bucket stands for: its geometric middle (bucket 0: its upper bound).
    public static func representativeMs(bucket i: Int) -> Double {
        i <= 0 ? baseMs : baseMs * exp2((Double(i) - 0.5) / Double(bucketsPerDoubling))
    }

    public mutating func add(ms: Double) {
        add(bucket: Self.bucket(forMs: ms), count: 1)
    }

    public mutating func add(bucket: Int, count: Int) {
        let i = min(max(bucket, 0), Self.bucketCount - 1)
        counts[i, default: 0] += count
        total += count
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (i, n) in other.counts { add(bucket: i, count: n) }
    }

    /// Nearest-rank quantile (`q` in 0...1) read at the bucket's representative value; nil when empty.
    public func quantileMs(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = max(1, Int((q * Double(total) - 1e-9).rounded(.up)))
        var seen = 0
        for i in counts.keys.sorted() {
            seen += counts[i]!
            if seen >= rank { return Self.representativeMs(bucket: i) }
        }
        return Self.representativeMs(bucket: counts.keys.max()!)
    }

    // MARK: Storage form

    /// `{"12":3,"13":40}`: sparse, ascending bucket order, readable in the sqlite3 shell.
    public var json: String {
        "{" + counts.keys.sorted().map { "\"\($0)\":\(counts[$0]!)" }.joined(separator: ",") + "}"
    }

    /// Parses `json`; malformed text yields an empty histogram rather than failing a whole query.
    public init(json: String) {
        guard let data = json.data(using: .utf8),
              let dict = try? JSONDecoder().decode([String: Int].self, from: data) else { return }
        for (k, n) in dict {
            if let i = Int(k), n > 0 { add(bucket: i, count: n) }
        }
    }
}
