import FoundationEssentials

/// One image pull seen on a host, successful or not, classified with the shared classifier.
///
/// `(host, seq)` identifies an event across resends: the agent numbers events once and the aggregator
/// ignores a pair it has already stored, which makes at-least-once delivery exactly-once in the database.
public struct PullEvent: Codable, Sendable, Hashable {
    public enum Result: String, Codable, Sendable, Hashable {
        case success, failure
    }

    public var seq: UInt64
    public var at: Date
    public var image: String
    public var registry: String
    /// The endpoint that answered or failed, when the source names it.
    public var endpoint: String?
    public var result: Result
    public var errorClass: ErrorClass
    public var detail: String
    /// Where the event came from, e.g. `docker-events`, `journal:docker`, `file:/var/log/kubelet.log`.
    public var source: String

    enum CodingKeys: String, CodingKey {
        case seq, at, image, registry, endpoint, result, errorClass = "class", detail, source
    }

    public init(
        seq: UInt64, at: Date, image: String, registry: String, endpoint: String? = nil, result: Result,
        errorClass: ErrorClass, detail: String = "", source: String
    ) {
        self.seq = seq
        self.at = at
        self.image = image
        self.registry = registry
        self.endpoint = endpoint
        self.result = result
        self.errorClass = errorClass
        self.detail = detail
        self.source = source
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seq = try c.decode(UInt64.self, forKey: .seq)
        at = try c.decode(Date.self, forKey: .at)
        image = try c.decode(String.self, forKey: .image)
        registry = try c.decode(String.self, forKey: .registry)
        endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint)
        result = try c.decode(Result.self, forKey: .result)
        errorClass = try c.decode(ErrorClass.self, forKey: .errorClass)
        detail = try c.decodeIfPresent(String.self, forKey: .detail) ?? ""
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? "unknown"
    }
}

/// A batch of pull events; the aggregator acknowledges the ones it has committed.
public struct PullEventBatch: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.pullEvents
    public var events: [PullEvent]

    public init(events: [PullEvent]) {
        self.events = events
    }
}

/// The aggregator's acknowledgement: these event sequence numbers are committed and may leave the spool.
public struct EventsAck: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.eventsAck
    public var seqs: [UInt64]

    public init(seqs: [UInt64]) {
        self.seqs = seqs
    }
}
