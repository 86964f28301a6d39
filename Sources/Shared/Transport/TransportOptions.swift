/// Limits every regwatch ZeroMQ socket runs with. The defaults suit a fleet of thousands of agents;
/// most are config keys (`transport:` in either file, see docs/configuration.md); the rest are fixed.
public struct TransportLimits: Sendable, Equatable {
    /// `ZMQ_MAXMSGSIZE`: a peer sending a larger message is disconnected by libzmq.
    public var maxMessageSize: Int64 = 4 << 20
    /// `ZMQ_SNDHWM` / `ZMQ_RCVHWM`, in messages.
    public var sendHighWaterMark: Int32 = 10_000
    public var receiveHighWaterMark: Int32 = 10_000
    /// Dealer (agent) only: ZMTP heartbeats. The agent pings every `heartbeatIntervalMs` and drops the
    /// connection after `heartbeatTimeoutMs` without an answer, so a dead aggregator is noticed in ~20 s.
    /// Its pings carry no TTL, and the router sends none of its own: libzmq (4.3) cancels a timer by
    /// walking every timer of its I/O thread, and each ping would arm and cancel one per connection, a cost
    /// that grows with the square of the fleet (88 % of a core for 10,000 idle agents, measured by
    /// `make bench-fleet`). Router heartbeats also trip a libzmq assertion (`!_io_error`) when one fires on
    /// a connection whose input was stopped, as after a routing id handover.
    public var heartbeatIntervalMs: Int32 = 5_000
    public var heartbeatTimeoutMs: Int32 = 15_000
    /// Router (aggregator) only: TCP keepalive on every agent connection, the kernel's timers instead of
    /// libzmq's. A host that dies or drops off the network without closing its connection is noticed
    /// after `keepaliveIdleSeconds` of silence plus `keepaliveCount` unanswered probes
    /// `keepaliveIntervalSeconds` apart: 30 s. A frozen agent process on a live host still answers them;
    /// its reports going stale say it instead.
    public var keepaliveIdleSeconds: Int32 = 15
    public var keepaliveIntervalSeconds: Int32 = 5
    public var keepaliveCount: Int32 = 3
    /// `ZMQ_HANDSHAKE_IVL`: a handshake that does not finish in time is dropped (and the agent retries).
    /// It also bounds a handshake stalled by a missing ZAP handler.
    public var handshakeTimeoutMs: Int32 = 10_000
    /// Our own bounded send queue in front of the socket (messages and bytes).
    public var outboxMessages: Int = 10_000
    public var outboxBytes: Int = 16 << 20
    /// Batches of received messages buffered for a slow consumer before new ones are dropped (counted).
    public var inboundBatches: Int = 4_096
    /// Router: `ZMQ_BACKLOG`, the listening socket's accept queue (the kernel caps it at
    /// `net.core.somaxconn`). libzmq's default, 100, overflows when a fleet connects at once (a DaemonSet
    /// rollout, an aggregator restart): the kernel drops the extra SYNs and those agents wait out TCP's
    /// retransmit backoff (1, 3, 7, 15 s …) before they even reach the handshake.
    public var acceptBacklog: Int32 = 4_096
    /// `ZMQ_LINGER` on close: how long queued messages may still be flushed.
    public var lingerMs: Int32 = 0
    /// Router: after handing over a small batch (fewer than ``smallInboundBatch`` messages), the I/O
    /// thread pauses this long before looking again, so light steady traffic (thousands of agents each
    /// sending now and then) is received a few messages per wake-up instead of one: every wake-up costs
    /// two context switches (this thread and the consumer's). Queued sends wait at most this long too.
    /// 0 turns it off. Heavy traffic fills batches and never pauses.
    public var inboundPauseMicroseconds: Int = 5_000
    /// What ``inboundPauseMicroseconds`` counts as a small batch.
    public var smallInboundBatch: Int = 32

    public init() {}
}

/// How a socket secures its connection.
public enum RouterSecurity: Sendable {
    /// CURVE with this server key pair; clients are admitted only by the ZAP authenticator.
    case curve(serverKeys: CurveKeyPair)
    /// No encryption or authentication. For local experiments only; callers log it loudly.
    case insecure
}

public enum DealerSecurity: Sendable {
    /// CURVE: pin the aggregator's public key, authenticate with our key pair.
    case curve(serverKey: CurvePublicKey, clientKeys: CurveKeyPair)
    case insecure
}

/// A received message as the transport hands it over.
public struct InboundMessage: Sendable, Equatable {
    /// The peer's routing id (on the aggregator: the agent's claimed host id).
    public var peer: String
    /// The host id the ZAP handler bound to the peer's CURVE key; nil without CURVE.
    public var authenticatedHost: String?
    /// The message bytes. Messages received together share one buffer (one allocation per batch).
    public var payload: ArraySlice<UInt8>

    public init(peer: String, authenticatedHost: String?, payload: ArraySlice<UInt8>) {
        self.peer = peer
        self.authenticatedHost = authenticatedHost
        self.payload = payload
    }
}

/// Something that happened to a connection, for logs, metrics and tests.
public enum TransportEvent: Sendable, Equatable {
    case listening(String)
    /// Router: a peer completed the handshake (and passed ZAP).
    case peerConnected(address: String)
    case peerDisconnected(address: String)
    /// Router: the ZAP handler refused a client.
    case authRejected(address: String, key: String?, reason: String)
    /// Dealer: handshake with the aggregator succeeded.
    case connected(String)
    case handshakeFailed(HandshakeFailure)
    case disconnected(String)
    case reconnectScheduled(afterMs: Int)

    public enum HandshakeFailure: Sendable, Equatable {
        /// The aggregator's ZAP handler refused our key; carries the ZAP status code (400).
        case auth(status: Int)
        /// Protocol error: wrong server key, or a mechanism mismatch (NULL against CURVE).
        case protocolError(code: Int)
        case other
    }
}
