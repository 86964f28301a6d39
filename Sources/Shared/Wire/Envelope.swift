import FoundationEssentials

/// The frame every wire message travels in: protocol version, type, sender and a per-sender sequence.
///
/// The header is decoded first and on its own, so a message of a type this build does not know is
/// rejected by the allowlist before its body is looked at.
public struct Envelope<Body: WireBody>: Codable, Sendable, Hashable {
    /// Protocol version of the sender.
    public var v: Int
    public var type: String
    /// The sender's host id (the aggregator uses `aggregator`).
    public var host: String
    /// Per-sender sequence number. Agents count reports and pull-event batches separately, each
    /// increasing; the aggregator sends 0 on acks and answers and the generation on `failover_command`.
    public var seq: UInt64
    public var sentAt: Date
    public var body: Body

    public init(host: String, seq: UInt64, sentAt: Date, body: Body, version: Int = WireProtocol.version) {
        self.v = version
        self.type = Body.messageType.rawValue
        self.host = host
        self.seq = seq
        self.sentAt = sentAt
        self.body = body
    }
}

/// The header fields alone; decoding it ignores the body.
public struct EnvelopeHeader: Codable, Sendable, Hashable {
    public var v: Int
    public var type: String
    public var host: String
    public var seq: UInt64
    public var sentAt: Date
}

/// Protocol constants.
public enum WireProtocol {
    /// The version this build speaks.
    public static let version = 1
    /// The oldest version this build still accepts (agent N-1 keeps working with aggregator N).
    public static let minimumVersion = 1
    /// The host id the aggregator puts in envelopes it sends.
    public static let aggregatorSender = "aggregator"
}
