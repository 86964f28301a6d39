import RegwatchAgent
import RegwatchShared

/// One emulated agent's moving state. Owned by exactly one ``AgentShard`` thread.
final class SimAgent {
    /// Position in the whole fleet (host id number - 1).
    let index: Int
    /// Position in its shard: where its figures go in ``ShardStats``.
    let slot: Int
    var identity: SimIdentity
    let gate: CommandGate
    var rng: SimRandom

    var socket: ZMQSocket?
    var monitor: ZMQMonitor?
    /// Connected with the joining routing id (`?KEY`) rather than the host id.
    var joining: Bool
    var connected = false
    var backoff = ReconnectBackoff()
    var reconnectAt: Int64?
    var nextJoinAt: Int64 = 0
    var nextReportAt: Int64 = 0
    /// A report came due while disconnected: like the agent's outbox, it leaves when the connection is back.
    var reportWaiting = false
    var reportSeq: UInt64 = 0
    var eventBatchSeq: UInt64 = 0
    var eventSeq: UInt64 = 0
    var applied: UInt64 = 0
    var appliedEpoch: UInt64 = 0
    var order = ReportFactory.initialOrder
    /// Events sent and not acknowledged: seq -> (event, when last sent, ms).
    var unacked: [UInt64: (event: PullEvent, sentAt: Int64)] = [:]
    /// The ``SimControl`` epoch of the latest handshake and of the latest report sent.
    var handshakeEpoch = 0
    var reportEpoch = 0

    init(index: Int, slot: Int, identity: SimIdentity, verifier: CommandVerifier) {
        self.index = index
        self.slot = slot
        self.identity = identity
        gate = CommandGate(verifier: verifier, hostID: identity.hostID, mirrorPools: ReportFactory.mirrorPools)
        rng = SimRandom(seed: UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
        joining = identity.enrolledWith == nil
    }

    var routingID: String { joining ? JoiningPeer.routingID(for: identity.keys.publicKey) : identity.hostID }
}
