import FoundationEssentials
import Glibc
import Logging
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Gets this agent enrolled and keeps it so: joins while the aggregator does not admit the key yet,
/// switches the connection to the host id once accepted, joins again if the aggregator forgets the key,
/// and carries out a key rotation that `regwatch-agent keys rotate` left beside the key.
///
/// Answers arrive from ``AgentInbox`` (``receive(_:)``); the service looks at them, at the connection and
/// at the key directory every ``tick`` while joining or rotating. Once admitted it sleeps until an answer
/// arrives or a next key appears (inotify), so an idle agent has no timer here.
public final class JoinService: Service, Sendable {
    let config: AgentConfig
    let client: DealerClient
    public let gate: EnrollmentGate
    let record: EnrollmentRecordFile
    let serverKey: CurvePublicKey
    let logger: Logger
    /// How often the loop looks at answers, the connection and the key directory.
    let tick: Duration
    /// An agent with a key of its own (no bootstrap token) that gets no answer to its join this long
    /// connects as its host id, as agents did before joins existed.
    static let legacyFallback: Duration = .seconds(10)
    /// The loop's pace once admitted when inotify cannot watch for the next key: how long `keys rotate`
    /// may then wait before the agent sees it.
    static let idleTick: Duration = .seconds(5)

    enum Answer: Sendable {
        case join(JoinResult)
        case rotate(RotateResult)
    }

    struct State: Sendable {
        var keys: CurveKeyPair
        var answers: [Answer] = []
        var seq: UInt64 = 0
        var lastReason = ""
        var rotation: (pair: CurveKeyPair, sentAt: ContinuousClock.Instant)?
    }

    private let state: Mutex<State>
    /// Rung by answers and by the next-key watch: what an idle admitted agent waits for.
    private let wake = WakeSignal()

    /// - Parameters: `keys`/`serverKey` are the agent's CURVE pair and the aggregator's pinned key.
    public init(config: AgentConfig, client: DealerClient, keys: CurveKeyPair, serverKey: CurvePublicKey, logger: Logger, tick: Duration = .milliseconds(100)) {
        self.config = config
        self.client = client
        self.serverKey = serverKey
        self.logger = logger
        self.tick = tick
        record = EnrollmentRecordFile(stateDir: config.stateDir)
        gate = EnrollmentGate(admitted: record.admits(host: config.host.id, key: keys.publicKey, serverKey: serverKey))
        state = Mutex(State(keys: keys))
    }

    /// The routing id to connect with first: the host id when this key is recorded as enrolled with this
    /// aggregator, else the joining id.
    public static func routingID(config: AgentConfig, keys: CurveKeyPair, serverKey: CurvePublicKey) -> String {
        EnrollmentRecordFile(stateDir: config.stateDir).admits(host: config.host.id, key: keys.publicKey, serverKey: serverKey)
            ? config.host.id : JoiningPeer.routingID(for: keys.publicKey)
    }

    /// An answer from the aggregator (called by ``AgentInbox``).
    public func receive(_ result: JoinResult) {
        state.withLock { $0.answers.append(.join(result)) }
        wake.ring()
    }

    public func receive(_ result: RotateResult) {
        state.withLock { $0.answers.append(.rotate(result)) }
        wake.ring()
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            guard let clientKey = self.config.aggregator.clientKey, let watch = FileWatch(path: AgentIdentity.nextKeyPath(clientKey)) else {
                await self.loop(keyWatch: false)
                return
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.watchNextKey(watch) }
                group.addTask { await self.loop(keyWatch: true) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Rings the loop when `keys rotate` leaves a next key (inotify), and once a minute in any case (a
    /// filesystem without notifications).
    private func watchNextKey(_ watch: FileWatch) async {
        await watch.run(thread: "regwatch-keys") {
            while true {
                watch.rearm()
                guard watch.wait(timeout: .seconds(60)) else { break }
                self.wake.ring()
            }
        }
    }

    /// - Parameter keyWatch: whether ``watchNextKey(_:)`` runs, so an idle admitted agent may sleep until
    ///   it or an answer rings instead of waking every ``idleTick``.
    private func loop(keyWatch: Bool) async {
        var lastHandshakes = -1
        var nextJoinAt = ContinuousClock.now
        // When the unanswered join on this connection went out (see ``legacyFallback``).
        var unanswered: ContinuousClock.Instant?
        var authFailures = client.statistics.authFailures
        if !gate.isAdmitted {
            logger.info("joining the aggregator", metadata: ["host.id": "\(config.host.id)", "key": "\(state.withLock { $0.keys.publicKey.z85 })"])
        }
        while !Task.isCancelled {
            let now = ContinuousClock.now
            for answer in state.withLock({ s in defer { s.answers = [] }; return s.answers }) {
                switch answer {
                case .join(let result):
                    unanswered = nil
                    handle(result, nextJoinAt: &nextJoinAt, lastHandshakes: &lastHandshakes)
                case .rotate(let result):
                    if handle(result) {
                        lastHandshakes = -1
                        nextJoinAt = now
                    }
                }
            }
            let failures = client.statistics.authFailures
            if failures > authFailures {
                authFailures = failures
                if adoptWaitingKey() {
                    lastHandshakes = -1
                    nextJoinAt = now
                }
            }
            if !gate.isAdmitted {
                let stats = client.statistics
                if stats.state == .connected, stats.handshakes != lastHandshakes || now >= nextJoinAt {
                    lastHandshakes = stats.handshakes
                    sendJoin()
                    nextJoinAt = now + .seconds(30)
                    if unanswered == nil { unanswered = now }
                }
                if let sent = unanswered, now - sent >= Self.legacyFallback, config.aggregator.bootstrapToken == nil, stats.state == .connected {
                    // An aggregator older than joins admits an enrolled key only as its host id and never
                    // answers: connect as before. Not recorded, so the next start asks again.
                    unanswered = nil
                    logger.warning("the aggregator did not answer the join (older than this agent?); connecting as the host id", metadata: ["host.id": "\(config.host.id)"])
                    client.switchIdentity(routingID: config.host.id)
                    gate.admit()
                }
            } else {
                checkRotation(now: now)
            }
            // Admitted with no rotation in flight, only the rotation check is left: every node of the fleet
            // need not wake ten times a second for a file `keys rotate` writes rarely.
            let idle = gate.isAdmitted && state.withLock { $0.rotation == nil && $0.answers.isEmpty }
            if idle, keyWatch {
                await wake.wait()
            } else {
                try? await Task.sleep(for: idle ? max(tick, Self.idleTick) : tick)
            }
        }
    }

    // MARK: Joining

    private func sendJoin() {
        var token: String?
        if let path = config.aggregator.bootstrapToken {
            do { token = try AgentIdentity.readToken(path) } catch {
                logger.error("cannot read the bootstrap token; joining without one", metadata: ["error": "\(error)"])
            }
        }
        let (key, seq) = state.withLock { s -> (CurvePublicKey, UInt64) in
            s.seq += 1
            return (s.keys.publicKey, s.seq)
        }
        let body = JoinRequest(host: config.host, publicKey: key.z85, token: token, agentVersion: RegwatchVersion.current)
        guard let frame = try? WireCodec().encode(Envelope(host: config.host.id, seq: seq, sentAt: Date(), body: body)) else { return }
        client.trySend(frame)
    }

    private func handle(_ result: JoinResult, nextJoinAt: inout ContinuousClock.Instant, lastHandshakes: inout Int) {
        let retry = Duration.milliseconds(Int64((result.retryAfterSeconds ?? 30) * 1000 * Double.random(in: 0.9...1.1)))
        switch result.status {
        case .accepted:
            guard !gate.isAdmitted else { return }
            let key = state.withLock { $0.keys.publicKey }
            do {
                try record.write(.init(host: config.host.id, publicKey: key.z85, serverKey: serverKey.z85, acceptedAt: Date()))
            } catch {
                // Still admitted for this run; the next start joins again, which the aggregator answers at once.
                logger.error("cannot record the enrollment; the next start joins again", metadata: ["file": "\(record.path)", "error": "\(error)"])
            }
            client.switchIdentity(routingID: config.host.id)
            gate.admit()
            logger.notice("enrolled: the aggregator accepted this agent's key", metadata: ["host.id": "\(config.host.id)", "key": "\(key.z85)", "via": "\(result.reason)"])
        case .pending:
            nextJoinAt = .now + retry
            if result.reason != state.withLock({ $0.lastReason }) {
                logger.notice("join pending: the aggregator waits for an operator", metadata: ["host.id": "\(config.host.id)", "reason": "\(result.reason)"])
            }
            state.withLock { $0.lastReason = result.reason }
        case .refused:
            nextJoinAt = .now + retry
            logger.error("join refused by the aggregator", metadata: ["host.id": "\(config.host.id)", "reason": "\(result.reason)"])
            state.withLock { $0.lastReason = result.reason }
        case .unknownKey:
            guard gate.isAdmitted else { return }
            logger.warning("the aggregator no longer knows this agent's key; joining again", metadata: ["host.id": "\(config.host.id)"])
            record.remove()
            gate.close()
            client.switchIdentity(routingID: JoiningPeer.routingID(for: state.withLock { $0.keys.publicKey }))
            lastHandshakes = -1
            nextJoinAt = .now
        }
    }

    // MARK: Rotation

    private func checkRotation(now: ContinuousClock.Instant) {
        guard let clientKey = config.aggregator.clientKey else { return }
        let next = AgentIdentity.nextKeyPath(clientKey)
        guard FileManager.default.fileExists(atPath: next) else { return }
        if let inFlight = state.withLock({ $0.rotation }), now - inFlight.sentAt < .seconds(30) { return }
        let pair: CurveKeyPair
        do { pair = try KeyFiles.readCurveKeyPair(next) } catch {
            logger.error("cannot read the next key; rotation not started", metadata: ["error": "\(error)"])
            refuseRotation(next: next, clientKey: clientKey, reason: error.description)
            return
        }
        state.withLock { $0.rotation = (pair, now) }
        guard let frame = try? WireCodec().encode(Envelope(
            host: config.host.id, seq: state.withLock { s in s.seq += 1; return s.seq }, sentAt: Date(), body: RotateRequest(newPublicKey: pair.publicKey.z85))) else { return }
        client.trySend(frame)
        logger.info("asking the aggregator to rotate this agent's key", metadata: ["host.id": "\(config.host.id)", "key": "\(pair.publicKey.z85)"])
    }

    /// Returns true when the agent now joins with its new key.
    private func handle(_ result: RotateResult) -> Bool {
        guard let clientKey = config.aggregator.clientKey, let pending = state.withLock({ s in defer { s.rotation = nil }; return s.rotation }) else { return false }
        let next = AgentIdentity.nextKeyPath(clientKey)
        guard result.status == .accepted else {
            logger.error("key rotation refused by the aggregator", metadata: ["reason": "\(result.reason)"])
            refuseRotation(next: next, clientKey: clientKey, reason: result.reason)
            return false
        }
        // The aggregator already admits only the new key: adopt it before anything else.
        if rename(next, clientKey) != 0 {
            logger.critical("the aggregator took the new key but it cannot replace the old file; keep \(next): it is this agent's key now", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
        state.withLock { $0.keys = pending.pair }
        // Back as the host id by way of a join with the new key: a connection that came straight back
        // with the same routing id could find the old one still holding it on the ROUTER. The join is
        // answered at once (the key is enrolled) and a round trip later the old connection is long gone.
        record.remove()
        gate.close()
        client.switchIdentity(routingID: JoiningPeer.routingID(for: pending.pair.publicKey), keys: pending.pair)
        logger.notice("key rotated; reconnecting with the new key", metadata: ["host.id": "\(config.host.id)", "key": "\(pending.pair.publicKey.z85)"])
        return true
    }

    /// The aggregator refuses the current key and a rotated key waits beside it: the agent stopped after
    /// the aggregator took the new key and before it replaced the file. Adopt it and join with it (answered
    /// at once when the aggregator has it). Returns true when it did.
    private func adoptWaitingKey() -> Bool {
        guard let clientKey = config.aggregator.clientKey else { return false }
        let next = AgentIdentity.nextKeyPath(clientKey)
        guard FileManager.default.fileExists(atPath: next), let pair = try? KeyFiles.readCurveKeyPair(next) else { return false }
        guard rename(next, clientKey) == 0 else {
            logger.error("cannot adopt the waiting key", metadata: ["file": "\(next)", "error": "\(String(cString: strerror(errno)))"])
            return false
        }
        state.withLock {
            $0.keys = pair
            $0.rotation = nil
        }
        record.remove()
        gate.close()
        client.switchIdentity(routingID: JoiningPeer.routingID(for: pair.publicKey), keys: pair)
        logger.notice("the aggregator refuses the old key and a rotated key was waiting: joining with it", metadata: [
            "host.id": "\(config.host.id)", "key": "\(pair.publicKey.z85)",
        ])
        return true
    }

    private func refuseRotation(next: String, clientKey: String, reason: String) {
        try? AtomicFile.write(Array("\(reason)\n".utf8), to: AgentIdentity.refusedPath(clientKey), mode: 0o600)
        unlink(next)
    }
}
