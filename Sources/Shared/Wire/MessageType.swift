/// Every message type the protocol knows. Dispatch goes through this allowlist: a type string that is
/// not here is counted and logged by the dispatcher and never reaches a handler.
public enum MessageType: String, Codable, Sendable, Hashable, CaseIterable {
    /// agent -> aggregator: full snapshot of the host's probes and runtime configuration.
    case report
    /// agent -> aggregator: pull events, delivered at least once.
    case pullEvents = "pull_events"
    /// aggregator -> agent: these pull events are committed.
    case eventsAck = "events_ack"
    /// aggregator -> agent: a signed failover directive.
    case failoverCommand = "failover_command"
    /// agent -> aggregator: the outcome of a failover command.
    case failoverAck = "failover_ack"
    /// agent -> aggregator: a key that is not enrolled asks to be (the only type a joining peer may send).
    case join
    /// aggregator -> agent: accepted, pending, refused, or unknown_key.
    case joinResult = "join_result"
    /// agent -> aggregator: an enrolled agent replaces its CURVE key.
    case rotate
    /// aggregator -> agent: the outcome of a rotate.
    case rotateResult = "rotate_result"
}

/// A message body that travels in an ``Envelope``.
public protocol WireBody: Codable, Sendable, Hashable {
    static var messageType: MessageType { get }
}
