import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Enrollment on the live aggregator: takes `join` and `rotate` requests from ingest, decides with the
/// ``EnrollmentPolicy`` and the files in `keys.dir`, and answers the agent; and it watches those files,
/// so what an operator does with `keys accept|reject|revoke` reaches live connections within a tick:
/// a revoked or replaced key's open connection is closed, a joining agent whose key was accepted is told.
///
/// Joins are processed on this service's task in batches of whatever waits (up to ``batchLimit``), at most
/// `enrollment.joinsPerSecond` of them (a join from a key that is enrolled already is cheap and not
/// counted): a flood of joins costs a bounded queue and a counter, and ingest of enrolled agents goes on
/// beside it. A batch reads and writes each file of `keys.dir` once: joined one by one, a fleet of 10,000
/// enrolling at once took minutes, each join re-reading and rewriting a file that grows with the fleet
/// (measured with `regwatch-fleetsim`).
public final class EnrollmentService: Service, Sendable {
    public struct Settings: Sendable {
        public var policy: EnrollmentPolicy
        public var maxPending: Int
        public var joinsPerSecond: Int
        /// How often the keys directory is looked at for operators' changes.
        public var watchInterval: Duration = .milliseconds(250)
        /// What a pending join is told to wait before asking again.
        public var pendingRetry: Double = 30
        public var refusedRetry: Double = 60

        public init(_ config: AggregatorConfig.Enrollment) {
            policy = EnrollmentPolicy(mode: config.mode, hostPattern: config.hostPattern)
            maxPending = config.maxPending
            joinsPerSecond = config.joinsPerSecond
        }
    }

    enum Work: Sendable {
        case join(Join)
        case rotate(RotateRequest, host: String, peer: String)
    }

    let settings: Settings
    let authenticator: EnrollmentAuthenticator
    let enrollments: EnrollmentStore
    let pendingStore: PendingJoinStore
    let tokens: TokenStore
    let router: RouterServer
    let logger: Logger
    /// Waiting work, at most ``queueLimit`` items; ``wake`` rings when some arrives.
    private let queue = Mutex<(items: [Work], finished: Bool)>(([], false))
    private let wake = WakeSignal()
    static let queueLimit = 1024
    /// Most joins decided together (one read and one write of each file).
    static let batchLimit = 512
    private let codec = WireCodec()

    struct State: Sendable {
        var limiter: JoinRateLimiter
        var tables = EnrollmentStore.Tables()
        var rejected: Set<CurvePublicKey> = []
        /// Old keys of rotations this service made: their connection is not closed (the agent moves over).
        var rotatedKeys: Set<CurvePublicKey> = []
        /// When each enrolled-looking peer with an unknown key was last told so.
        var unknownKeyNotices: [String: ContinuousClock.Instant] = [:]
        var rateLimited = 0
        var rateLimitedLogged: ContinuousClock.Instant?
        var pendingStamp: String??
        var closeNextTick: [String] = []
    }

    private let state: Mutex<State>

    public init(settings: Settings, authenticator: EnrollmentAuthenticator, backend: EnrollmentBackend, router: RouterServer, logger: Logger) {
        self.settings = settings
        self.authenticator = authenticator
        enrollments = EnrollmentStore(backend)
        pendingStore = PendingJoinStore(backend)
        tokens = TokenStore(backend)
        self.router = router
        self.logger = logger
        let (tables, rejected) = authenticator.refresh()
        state = Mutex(State(limiter: JoinRateLimiter(perSecond: settings.joinsPerSecond), tables: tables, rejected: rejected))
    }

    // MARK: From ingest

    /// A message from a joining connection: the routing id or the ZAP user id is `?KEY`. Only a `join`
    /// whose key is the connection's own goes on; everything else is dropped and counted. Runs on
    /// ingest's task, so it only decodes and queues.
    public func receiveJoining(peer: String, userID: String?, payload: some Collection<UInt8>) {
        let message: WireMessage
        do { message = try codec.decode(payload) } catch {
            if case .unknownType = error { dropJoining("unknown") } else { dropJoining("malformed") }
            return
        }
        if !JoiningPeer.isJoining(peer) {
            // A peer connected as a host id with a key nobody enrolled: its enrollment is gone (files
            // restored from an old backup, say). Tell it, now and then, so it joins again.
            dropJoining(message.type.rawValue)
            noticeUnknownKey(peer: peer)
            return
        }
        guard case .join(let env) = message else {
            dropJoining(message.type.rawValue)
            return
        }
        guard let key = JoiningPeer.key(of: peer) else {
            dropJoining("malformed")
            return
        }
        // The routing id names a key; the connection must have authenticated with it: either ZAP gave
        // it this same joining id, or the key is enrolled and ZAP bound it to a host id.
        let consistent = userID == peer || (userID.map { !JoiningPeer.isJoining($0) } ?? false && authenticator.host(for: key) == userID)
        guard consistent else {
            dropJoining("malformed")
            return
        }
        if !enqueue(.join(Join(request: env.body, key: key, peer: peer))) {
            count(result: "busy")
            reply(to: peer, JoinResult(status: .refused, reason: "the aggregator is busy with joins; try again", retryAfterSeconds: Double.random(in: 5...30)))
        }
    }

    /// A `rotate` from an enrolled host (ingest's dispatcher checked the sender against the key's host).
    public func receiveRotate(_ request: RotateRequest, host: String) {
        if !enqueue(.rotate(request, host: host, peer: host)) {
            reply(to: host, RotateResult(status: .refused, reason: "the aggregator is busy; try again"))
        }
    }

    // MARK: Service

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.processQueue() }
            group.addTask {
                while !Task.isCancelled {
                    self.watch()
                    try? await Task.sleep(for: self.settings.watchInterval)
                }
            }
            await withGracefulShutdownHandler {
                await group.next()
            } onGracefulShutdown: {
                self.queue.withLock { $0.finished = true }
                self.wake.ring()
            }
            group.cancelAll()
        }
    }

    // MARK: Queue

    /// False when the queue is full (the caller answers "busy").
    private func enqueue(_ item: Work) -> Bool {
        let queued = queue.withLock { q -> Bool in
            guard q.items.count < Self.queueLimit else { return false }
            q.items.append(item)
            return true
        }
        if queued { wake.ring() }
        return queued
    }

    /// Takes what waits, in arrival order: consecutive joins as one batch, rotations one at a time.
    private func processQueue() async {
        while true {
            let (items, finished) = queue.withLock { q in
                defer { q.items = [] }
                return (q.items, q.finished)
            }
            if finished { return }
            var joins: [Join] = []
            for item in items {
                switch item {
                case .join(let join):
                    joins.append(join)
                    if joins.count == Self.batchLimit {
                        process(joins: joins)
                        joins = []
                    }
                case .rotate(let request, let host, let peer):
                    if !joins.isEmpty { process(joins: joins) }
                    joins = []
                    process(rotate: request, host: host, peer: peer)
                }
            }
            if !joins.isEmpty { process(joins: joins) }
            if items.isEmpty { await wake.wait() }
        }
    }

    // MARK: Joins

    struct Join: Sendable {
        var request: JoinRequest
        var key: CurvePublicKey
        var peer: String
    }

    /// Decides a batch of joins, each as if alone after the ones before it, reading and writing each file
    /// once: tokens are used in one write, keys enrolled in one write.
    func process(joins: [Join], now: Date = Date()) {
        let (tables, rejected) = authenticator.refresh()
        // Those not answered yet, told that the files are unusable if reading or writing one fails.
        var unanswered = joins
        do {
            let checked = try tokens.check(joins.map(\.request.token), now: now)
            var accepting: [(join: Join, via: String, result: String)] = []
            for (join, verdict) in zip(joins, checked) {
                let host = join.request.host.id
                if tables.active[join.key] == nil, !allowedByRate() {
                    count(result: "rate_limited")
                    logRateLimited()
                    reply(to: join.peer, JoinResult(status: .refused, reason: "too many joins at once; try again", retryAfterSeconds: Double.random(in: 5...30)))
                    continue
                }
                switch settings.policy.decide(.init(request: join.request, key: join.key, tables: tables, rejected: rejected, token: verdict)) {
                case .accept(let result, let via):
                    if result == "already_enrolled" {
                        finish(peer: join.peer, host: host, key: join.key, result: result, JoinResult(status: .accepted, reason: "enrolled already"))
                    } else {
                        accepting.append((join, via, result))
                    }
                case .pending(let reason):
                    addPending(join.request, key: join.key, peer: join.peer, verdict: verdict, now: now, reason: reason)
                case .refuse(let result, let reason):
                    finish(peer: join.peer, host: host, key: join.key, result: result, JoinResult(status: .refused, reason: reason, retryAfterSeconds: settings.refusedRetry))
                }
            }
            unanswered = accepting.map(\.join)
            // Used under the token file's lock, so two joins racing for a token's last use cannot both have it.
            let used = try tokens.use(accepting.map(\.join.request.token), now: now)
            var admit: [(join: Join, via: String, result: String)] = []
            for (a, verdict) in zip(accepting, used) {
                guard case .valid = verdict else {
                    finish(peer: a.join.peer, host: a.join.request.host.id, key: a.join.key, result: verdict.result,
                           JoinResult(status: .refused, reason: verdict.reason, retryAfterSeconds: settings.refusedRetry))
                    continue
                }
                admit.append(a)
            }
            unanswered = admit.map(\.join)
            let outcomes = try enrollments.accept(admit.map { .init(host: $0.join.request.host.id, key: $0.join.key, via: $0.via) }, now: now)
            unanswered = []
            var enrolled: [(join: Join, via: String, result: String)] = []
            for (a, outcome) in zip(admit, outcomes) {
                switch outcome {
                case .success: enrolled.append(a)
                case .failure(.hostHasAnotherKey):
                    // Another key won the host id meanwhile: this one waits for an operator.
                    addPending(a.join.request, key: a.join.key, peer: a.join.peer, verdict: .valid(name: a.via), now: now,
                               reason: "host \(a.join.request.host.id) is enrolled with another key: accept with --replace if the node was reinstalled")
                case .failure(let error):
                    cannotDecide(a.join, error)
                }
            }
            try? pendingStore.remove(keys: Set(enrolled.map(\.join.key)))
            // The watcher's baseline is left alone: it must still see every other change (a revocation
            // made meanwhile). It tells these agents once more that they are accepted, which they ignore.
            authenticator.refresh()
            for a in enrolled {
                finish(peer: a.join.peer, host: a.join.request.host.id, key: a.join.key, result: a.result, JoinResult(status: .accepted, reason: a.via))
            }
        } catch {
            for join in unanswered { cannotDecide(join, error) }
        }
    }

    private func allowedByRate() -> Bool {
        state.withLock { s -> Bool in
            if s.limiter.allow(now: .now) { return true }
            s.rateLimited += 1
            return false
        }
    }

    private func cannotDecide(_ join: Join, _ error: any Error) {
        logger.error("cannot decide a join: the keys directory is not usable", metadata: ["host.id": "\(join.request.host.id)", "key": "\(join.key.z85)", "error": "\(error)"])
        reply(to: join.peer, JoinResult(status: .refused, reason: "the aggregator cannot read its keys directory", retryAfterSeconds: settings.refusedRetry))
    }

    private func addPending(_ request: JoinRequest, key: CurvePublicKey, peer: String, verdict: TokenStore.Verdict, now: Date, reason: String) {
        let entry = PendingJoinStore.Entry(
            host: request.host.id, key: key.z85, labels: request.host.labels, agentVersion: request.agentVersion, reason: reason,
            token: EnrollmentPolicy.describe(verdict), firstSeen: now, lastSeen: now, attempts: 1)
        let outcome: PendingJoinStore.AddOutcome
        do { outcome = try pendingStore.add(entry, limit: settings.maxPending) } catch {
            logger.error("cannot record a pending join", metadata: ["host.id": "\(request.host.id)", "key": "\(key.z85)", "error": "\(error)"])
            reply(to: peer, JoinResult(status: .refused, reason: "the aggregator cannot write its pending list", retryAfterSeconds: settings.refusedRetry))
            return
        }
        switch outcome {
        case .added, .repeated:
            finish(peer: peer, host: request.host.id, key: key, result: "pending", JoinResult(status: .pending, reason: reason, retryAfterSeconds: settings.pendingRetry))
        case .full:
            finish(peer: peer, host: request.host.id, key: key, result: "pending_full",
                   JoinResult(status: .refused, reason: "the pending list is full (enrollment.maxPending \(settings.maxPending))", retryAfterSeconds: settings.refusedRetry))
        case .rejected:
            finish(peer: peer, host: request.host.id, key: key, result: "key_rejected", JoinResult(status: .refused, reason: "an operator rejected this key"))
        }
    }

    private func finish(peer: String, host: String, key: CurvePublicKey, result: String, _ answer: JoinResult) {
        count(result: result)
        let metadata: Logger.Metadata = ["host.id": "\(host.prefix(64))", "key": "\(key.z85)", "result": "\(result)", "reason": "\(answer.reason)"]
        switch answer.status {
        case .accepted: logger.notice("join accepted", metadata: metadata)
        case .pending: logger.notice("join pending", metadata: metadata)
        default: logger.warning("join refused", metadata: metadata)
        }
        reply(to: peer, answer)
    }

    private func logRateLimited() {
        let (n, due) = state.withLock { s -> (Int, Bool) in
            let now = ContinuousClock.now
            guard s.rateLimitedLogged.map({ now - $0 >= .seconds(1) }) ?? true else { return (0, false) }
            s.rateLimitedLogged = now
            defer { s.rateLimited = 0 }
            return (s.rateLimited, true)
        }
        if due { logger.warning("joins refused over enrollment.joinsPerSecond", metadata: ["refused": "\(n)", "limit": "\(settings.joinsPerSecond)"]) }
    }

    // MARK: Rotation

    func process(rotate request: RotateRequest, host: String, peer: String) {
        let refuse = { (reason: String) in
            Counter(label: MetricNames.enrollmentRotationsTotal, dimensions: [("result", "refused")]).increment()
            self.logger.warning("key rotation refused", metadata: ["host.id": "\(host)", "reason": "\(reason)"])
            self.reply(to: peer, RotateResult(status: .refused, reason: reason))
        }
        guard let new = try? CurvePublicKey(z85: request.newPublicKey) else { return refuse("newPublicKey is not a CURVE public key") }
        let tables = authenticator.refresh().tables
        guard let old = tables.active.first(where: { $0.value == host })?.key else { return refuse("host \(host) is not enrolled") }
        // Marked before the swap, so the watcher never mistakes it for a revocation.
        state.withLock { _ = $0.rotatedKeys.insert(old) }
        do {
            try enrollments.rotate(host: host, from: old, to: new)
        } catch {
            state.withLock { _ = $0.rotatedKeys.remove(old) }
            return refuse(error.description)
        }
        authenticator.refresh()
        Counter(label: MetricNames.enrollmentRotationsTotal, dimensions: [("result", "accepted")]).increment()
        logger.notice("key rotated", metadata: ["host.id": "\(host)", "old.key": "\(old.z85)", "key": "\(new.z85)"])
        reply(to: peer, RotateResult(status: .accepted, reason: ""))
    }

    // MARK: Watching the keys directory

    /// Applies what changed in `keys.dir` since the last look: closes the connections of keys no longer
    /// enrolled (revoked, replaced) or rejected, tells joining peers their key was accepted, and
    /// refreshes the pending gauge.
    func watch() {
        let (tables, rejected) = authenticator.refresh()
        let (before, rejectedBefore, rotated) = state.withLock { s -> (EnrollmentStore.Tables, Set<CurvePublicKey>, Set<CurvePublicKey>) in
            defer { s.tables = tables; s.rejected = rejected }
            return (s.tables, s.rejected, s.rotatedKeys)
        }
        if before != tables {
            for (key, host) in before.active where tables.active[key] == nil {
                if rotated.contains(key) {
                    state.withLock { _ = $0.rotatedKeys.remove(key) }
                    continue
                }
                router.disconnect(peer: host, reason: "its key is no longer enrolled")
                Counter(label: MetricNames.enrollmentDisconnectsTotal).increment()
                logger.notice("key no longer enrolled: closing its connection", metadata: ["host.id": "\(host)", "key": "\(key.z85)"])
            }
            // Closed first, then told: a replacing agent must not find the old connection still holding the host id.
            for (key, host) in tables.active where before.active[key] == nil {
                reply(to: JoiningPeer.routingID(for: key), JoinResult(status: .accepted, reason: "accepted by an operator"))
                logger.debug("told a joining peer it is enrolled", metadata: ["host.id": "\(host)", "key": "\(key.z85)"])
            }
        }
        // A rejected key is told why, and its connection closed a tick later, once the answer is out.
        for peer in state.withLock({ s in defer { s.closeNextTick = [] }; return s.closeNextTick }) {
            router.disconnect(peer: peer, reason: "an operator rejected its key")
            Counter(label: MetricNames.enrollmentDisconnectsTotal).increment()
        }
        for key in rejected.subtracting(rejectedBefore) {
            let peer = JoiningPeer.routingID(for: key)
            reply(to: peer, JoinResult(status: .refused, reason: "an operator rejected this key"))
            state.withLock { $0.closeNextTick.append(peer) }
        }
        let stamp = pendingStore.stamp()
        if state.withLock({ s in defer { s.pendingStamp = .some(stamp) }; return s.pendingStamp != .some(stamp) }),
           let pending = try? pendingStore.pending() {
            Gauge(label: MetricNames.enrollmentPending).record(pending.count)
        }
    }

    // MARK: Helpers

    private func noticeUnknownKey(peer: String) {
        let due = state.withLock { s -> Bool in
            let now = ContinuousClock.now
            if let last = s.unknownKeyNotices[peer], now - last < .seconds(10) { return false }
            if s.unknownKeyNotices.count > 10_000 { s.unknownKeyNotices.removeAll() }
            s.unknownKeyNotices[peer] = now
            return true
        }
        guard due else { return }
        logger.warning("a peer connects as an enrolled host with a key that is not enrolled; telling it to join again", metadata: ["peer": "\(peer.prefix(64))"])
        reply(to: peer, JoinResult(status: .unknownKey, reason: "this aggregator does not know your key; join again"))
    }

    private func dropJoining(_ type: String) {
        Counter(label: MetricNames.enrollmentJoiningDroppedTotal, dimensions: [("type", type)]).increment()
    }

    private func count(result: String) {
        Counter(label: MetricNames.enrollmentJoinsTotal, dimensions: [("result", result)]).increment()
    }

    private func reply<B: WireBody>(to peer: String, _ body: B) {
        guard let frame = try? codec.encode(Envelope(host: WireProtocol.aggregatorSender, seq: 0, sentAt: Date(), body: body)) else { return }
        router.trySend(to: peer, payload: frame)
    }
}
