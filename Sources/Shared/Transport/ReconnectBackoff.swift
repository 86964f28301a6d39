/// Exponential reconnect backoff with jitter, computed by us because libzmq adds no jitter once
/// `ZMQ_RECONNECT_IVL_MAX` is set: without it, 10k agents cut off together reconnect in lockstep.
///
/// "Equal jitter": the n-th delay is uniformly drawn from [d/2, d] with d = min(max, initial·2ⁿ), so
/// retries spread out while never collapsing to zero.
public struct ReconnectBackoff: Sendable, Equatable {
    public var initialMs: Int
    public var maxMs: Int
    public private(set) var attempt = 0

    public init(initialMs: Int = 500, maxMs: Int = 30_000) {
        self.initialMs = max(1, initialMs)
        self.maxMs = max(self.initialMs, maxMs)
    }

    /// The next delay in milliseconds; advances the attempt counter.
    public mutating func next(using rng: inout some RandomNumberGenerator) -> Int {
        let exp = min(attempt, 30)
        let ceiling = min(maxMs, initialMs << exp)
        attempt += 1
        let floor = ceiling / 2
        return floor == ceiling ? ceiling : Int.random(in: floor...ceiling, using: &rng)
    }

    public mutating func next() -> Int {
        var rng = SystemRandomNumberGenerator()
        return next(using: &rng)
    }

    /// A successful handshake starts the sequence over.
    public mutating func reset() { attempt = 0 }
}
