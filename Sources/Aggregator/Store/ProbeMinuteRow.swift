import Foundation

/// One endpoint's probes during one minute, rolled up from raw samples by `FleetStore.maintain`: the
/// history behind dashboard sparklines and "since when" questions, kept far longer than raw samples.
public struct ProbeMinuteRow: Codable, Sendable, Equatable {
    public var registry: String
    public var endpoint: String
    /// Start of the minute.
    public var minute: Date
    public var samples: Int
    /// Samples whose class was not `ok`.
    public var failures: Int
    /// Failing samples per class.
    public var failureClasses: [String: Int]
    /// Samples that had a `totalMs`.
    public var timedSamples: Int
    public var meanMs: Double?
    public var minMs: Double?
    public var maxMs: Double?
    /// Estimated from the latency buckets (within about 9%), clamped to `minMs...maxMs`.
    public var p50Ms: Double?
    public var p95Ms: Double?

    public init(
        registry: String, endpoint: String, minute: Date, samples: Int, failures: Int, failureClasses: [String: Int],
        timedSamples: Int, meanMs: Double?, minMs: Double?, maxMs: Double?, p50Ms: Double?, p95Ms: Double?
    ) {
        self.registry = registry
        self.endpoint = endpoint
        self.minute = minute
        self.samples = samples
        self.failures = failures
        self.failureClasses = failureClasses
        self.timedSamples = timedSamples
        self.meanMs = meanMs
        self.minMs = minMs
        self.maxMs = maxMs
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
    }
}
