/// A decoded, allowlisted message. The cases are exactly the ``MessageType`` cases.
public enum WireMessage: Sendable, Hashable {
    case report(Envelope<Report>)
    case pullEvents(Envelope<PullEventBatch>)
    case eventsAck(Envelope<EventsAck>)
    case failoverCommand(Envelope<SignedFailoverCommand>)
    case failoverAck(Envelope<FailoverAck>)
    case join(Envelope<JoinRequest>)
    case joinResult(Envelope<JoinResult>)
    case rotate(Envelope<RotateRequest>)
    case rotateResult(Envelope<RotateResult>)

    public var type: MessageType {
        switch self {
        case .report: .report
        case .pullEvents: .pullEvents
        case .eventsAck: .eventsAck
        case .failoverCommand: .failoverCommand
        case .failoverAck: .failoverAck
        case .join: .join
        case .joinResult: .joinResult
        case .rotate: .rotate
        case .rotateResult: .rotateResult
        }
    }

    /// The sender host id the envelope claims.
    public var sender: String {
        switch self {
        case .report(let e): e.host
        case .pullEvents(let e): e.host
        case .eventsAck(let e): e.host
        case .failoverCommand(let e): e.host
        case .failoverAck(let e): e.host
        case .join(let e): e.host
        case .joinResult(let e): e.host
        case .rotate(let e): e.host
        case .rotateResult(let e): e.host
        }
    }
}
