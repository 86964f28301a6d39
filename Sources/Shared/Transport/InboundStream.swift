/// Received messages as an async sequence. The I/O thread hands over whole batches (everything that
/// was waiting on the socket), and iteration walks a batch without suspending, which keeps per-message
/// overhead to a function call under load.
public struct InboundStream: AsyncSequence, Sendable {
    public typealias Element = InboundMessage
    let batches: AsyncStream<[InboundMessage]>

    public struct AsyncIterator: AsyncIteratorProtocol {
        var upstream: AsyncStream<[InboundMessage]>.AsyncIterator
        var current: [InboundMessage] = []
        var index = 0

        public mutating func next() async -> InboundMessage? {
            while index >= current.count {
                guard let batch = await upstream.next() else { return nil }
                current = batch
                index = 0
            }
            defer { index += 1 }
            return current[index]
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> InboundMessage? {
            while index >= current.count {
                guard let batch = await upstream.next(isolation: actor) else { return nil }
                current = batch
                index = 0
            }
            defer { index += 1 }
            return current[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(upstream: batches.makeAsyncIterator())
    }

    /// Whole batches, for consumers that commit in groups (the aggregator's ingest).
    public var batched: AsyncStream<[InboundMessage]> { batches }
}
