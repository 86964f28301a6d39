/// A key that is not enrolled yet asks to be (agent -> aggregator). The only message the aggregator
/// accepts from a joining peer; see `docs/enrollment.md`.
public struct JoinRequest: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.join
    public var host: HostIdentity
    /// The agent's CURVE public key (Z85). It must be the key the connection authenticated with.
    public var publicKey: String
    /// The bootstrap token, if the agent has one.
    public var token: String?
    public var agentVersion: String

    public init(host: HostIdentity, publicKey: String, token: String?, agentVersion: String) {
        self.host = host
        self.publicKey = publicKey
        self.token = token
        self.agentVersion = agentVersion
    }
}

/// The aggregator's answer to a ``JoinRequest`` (or to an agent that believes it is enrolled and is not).
public struct JoinResult: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.joinResult

    public enum Status: String, Codable, Sendable, Hashable {
        /// Enrolled: reconnect with routing id = host id.
        case accepted
        /// Waiting for an operator (`keys accept`); the agent is told again when that happens.
        case pending
        /// Not admitted; `reason` says why. The agent tries again after `retryAfterSeconds`.
        case refused
        /// Sent to a peer that connects as an enrolled host with a key the aggregator does not know:
        /// its enrollment is gone, so it joins again.
        case unknownKey = "unknown_key"
    }

    public var status: Status
    public var reason: String
    public var retryAfterSeconds: Double?

    public init(status: Status, reason: String, retryAfterSeconds: Double? = nil) {
        self.status = status
        self.reason = reason
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// An enrolled agent replaces its key (agent -> aggregator). It travels on the connection that CURVE
/// authenticated with the old key, which is what proves the request comes from the old key's holder.
public struct RotateRequest: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.rotate
    public var newPublicKey: String

    public init(newPublicKey: String) {
        self.newPublicKey = newPublicKey
    }
}

/// The aggregator's answer to a ``RotateRequest``.
public struct RotateResult: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.rotateResult

    public enum Status: String, Codable, Sendable, Hashable { case accepted, refused }

    public var status: Status
    public var reason: String

    public init(status: Status, reason: String) {
        self.status = status
        self.reason = reason
    }
}

/// The routing id a joining connection uses: `?` and its Z85 public key. It can never be a host id
/// (`?` is not in the host-id alphabet), and it names the key the ZAP handler saw, so the router can
/// check the two agree.
public enum JoiningPeer {
    public static let prefix: Character = "?"

    public static func routingID(for key: CurvePublicKey) -> String { "?\(key.z85)" }

    /// The key a joining routing id (or ZAP user id) names; nil for a host id.
    public static func key(of routingID: String) -> CurvePublicKey? {
        guard routingID.first == prefix else { return nil }
        return try? CurvePublicKey(z85: String(routingID.dropFirst()))
    }

    public static func isJoining(_ id: String) -> Bool { id.utf8.first == UInt8(ascii: "?") }
}
