import Logging
import Metrics
import Synchronization

/// Routes decoded frames to handlers by an explicit allowlist of message types.
///
/// A frame whose type is not allowlisted, or that does not decode, is counted and logged (rate-limited
/// to the first few, then every 1000th) and never handled. Roles register only the types they accept:
/// the aggregator never handles `failover_command`, an agent never handles `report`.
public final class MessageDispatcher: Sendable {
    /// Called with the decoded message and the transport-authenticated peer id (nil on insecure transports).
    public typealias Handler = @Sendable (WireMessage, _ authenticatedPeer: String?) -> Void

    private let handlers: [MessageType: Handler]
    private let codec = WireCodec()
    private let logger: Logger
    private let stats = Mutex(Stats())

    public struct Stats: Sendable, Equatable {
        public var handled = 0
        public var unknownType = 0
        public var notAllowed = 0
        public var malformed = 0
        public var senderMismatch = 0
    }

    public init(handlers: [MessageType: Handler], logger: Logger) {
        self.handlers = handlers
        self.logger = logger
    }

    public var statistics: Stats { stats.withLock { $0 } }

    public enum Outcome: Sendable, Equatable {
        case handled(MessageType)
        case rejected(String)
    }

    /// Decodes and dispatches one frame. `authenticatedPeer`, when given, must equal the envelope's sender.
    @discardableResult
    public func dispatch(_ frame: some Collection<UInt8>, authenticatedPeer: String?) -> Outcome {
        let message: WireMessage
        do {
            message = try codec.decode(frame)
        } catch {
            let count = stats.withLock { s -> Int in
                if case .unknownType = error { s.unknownType += 1; return s.unknownType }
                s.malformed += 1
                return s.malformed
            }
            Counter(label: MetricNames.wireRejectedTotal, dimensions: [("reason", error.code)]).increment()
            if count <= 5 || count % 1000 == 0 {
                logger.warning("rejected wire message", metadata: [
                    "peer": "\(authenticatedPeer ?? "-")", "error.code": "\(error.code)", "error": "\(error)", "count": "\(count)",
                ])
            }
            return .rejected(error.code)
        }
        guard let handler = handlers[message.type] else {
            let count = stats.withLock { s in s.notAllowed += 1; return s.notAllowed }
            Counter(label: MetricNames.wireRejectedTotal, dimensions: [("reason", "wire.type_not_accepted")]).increment()
            if count <= 5 || count % 1000 == 0 {
                logger.warning("message type not accepted by this role", metadata: ["peer": "\(authenticatedPeer ?? "-")", "type": "\(message.type.rawValue)"])
            }
            return .rejected("wire.type_not_accepted")
        }
        if let peer = authenticatedPeer, peer != message.sender {
            stats.withLock { $0.senderMismatch += 1 }
            Counter(label: MetricNames.wireRejectedTotal, dimensions: [("reason", "wire.sender_mismatch")]).increment()
            logger.warning("message claims another host id than its key is enrolled for", metadata: [
                "peer": "\(peer)", "claimed": "\(message.sender.prefix(64))", "type": "\(message.type.rawValue)",
            ])
            return .rejected("wire.sender_mismatch")
        }
        stats.withLock { $0.handled += 1 }
        handler(message, authenticatedPeer)
        return .handled(message.type)
    }
}
