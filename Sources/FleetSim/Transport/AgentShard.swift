import CZeroMQ
import FoundationEssentials
import Glibc
import RegwatchShared
import Synchronization

/// A slice of the emulated fleet on one thread: one DEALER per agent (with its own key and routing id,
/// options as the agent sets them) and its monitor, all watched by one epoll set through libzmq's
/// `ZMQ_FD`, so 10,000 sockets cost a wake-up per event rather than a scan per event.
///
/// Each agent behaves as `regwatch-agent run` does on the wire: joins with the bootstrap token until
/// accepted, reconnects as its host id, reports every interval (a report due while disconnected leaves when
/// the connection is back), reconnects with the agent's ``ReconnectBackoff``, sends pull events until they
/// are acknowledged, and answers failover commands after the agent's own ``CommandGate`` checks.
final class AgentShard: @unchecked Sendable {
    let settings: SimSettings
    let context: ZMQContext
    let control: SimControl
    let agents: [SimAgent]
    let token: String
    let serverKeyZ85: String
    /// The run's start (monotonic ms): the zero of every recorded time.
    let startMs: Int64
    let keepAckedEvents: Bool
    let stats: Mutex<ShardStats>
    private let epfd: Int32
    private let codec = WireCodec()
    private let factory = ReportFactory()
    private let intervalMs: Int64

    init(settings: SimSettings, context: ZMQContext, control: SimControl, agents: [SimAgent], startMs: Int64) throws(SimError) {
        self.settings = settings
        self.context = context
        self.control = control
        self.agents = agents
        self.startMs = startMs
        token = settings.token
        serverKeyZ85 = settings.serverKey.z85
        keepAckedEvents = settings.ackedEventsFile != nil
        intervalMs = Int64(settings.interval.seconds * 1000)
        stats = Mutex(ShardStats(count: agents.count))
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw .transport("epoll_create1: \(String(cString: strerror(errno)))") }
    }

    /// The thread body: runs until ``SimControl/stopping``, then closes every socket.
    func run() {
        let now = monotonicNow()
        for a in agents {
            // First reports spread over one interval, as agents started at different times would send them.
            a.nextReportAt = now + Int64(a.rng.unit() * Double(intervalMs))
            open(a)
        }
        var events = [epoll_event](repeating: epoll_event(), count: 512)
        var lastScan: Int64 = 0
        while !control.stopping.load(ordering: .relaxed) {
            let n = epoll_wait(epfd, &events, Int32(events.count), 20)
            if n > 0 {
                for i in 0..<Int(n) {
                    let tag = events[i].data.u64
                    let a = agents[Int(tag >> 1)]
                    if tag & 1 == 1 { handleMonitor(a) } else { drain(a) }
                }
            }
            let t = monotonicNow()
            if t - lastScan >= 20 {
                lastScan = t
                scan(now: t)
            }
        }
        for a in agents { close(a) }
        Glibc.close(epfd)
        let enrolled = agents.filter { !$0.joining }.map { Int32($0.index) }
        stats.withLock { $0.enrolledAgents = enrolled }
    }

    // MARK: Sockets

    private func open(_ a: SimAgent) {
        do {
            let s = try ZMQSocket(context: context, type: ZMQ_DEALER)
            try s.set(ZMQ_ROUTING_ID, string: a.routingID)
            try s.set(ZMQ_LINGER, Int32(0))
            try s.set(ZMQ_HEARTBEAT_IVL, TransportLimits().heartbeatIntervalMs)
            try s.set(ZMQ_HEARTBEAT_TIMEOUT, TransportLimits().heartbeatTimeoutMs)
            try s.set(ZMQ_HANDSHAKE_IVL, TransportLimits().handshakeTimeoutMs)
            try s.set(ZMQ_IMMEDIATE, Int32(1))
            try s.set(ZMQ_RECONNECT_IVL, Int32(-1))
            try s.set(ZMQ_CURVE_SERVERKEY, string: serverKeyZ85)
            try s.set(ZMQ_CURVE_PUBLICKEY, string: a.identity.keys.publicKey.z85)
            try s.set(ZMQ_CURVE_SECRETKEY, string: a.identity.keys.secretZ85)
            let m = try ZMQMonitor(context: context, watching: s)
            a.socket = s
            a.monitor = m
            watch(s.getInt32(ZMQ_FD), tag: UInt64(a.slot) << 1)
            watch(m.socket.getInt32(ZMQ_FD), tag: UInt64(a.slot) << 1 | 1)
            try s.connect(settings.endpoint)
            // Read both until empty once: an inproc pipe signals `ZMQ_FD` only when it turns readable, and
            // a new pipe starts out counted as readable until its reader has found it empty.
            handleMonitor(a)
            drain(a)
        } catch {
            // Out of file descriptors or sockets: counted as a failed connect and retried with backoff.
            stats.withLock { $0.disconnects += 1 }
            scheduleReconnect(a, now: monotonicNow())
        }
    }

    private func close(_ a: SimAgent) {
        if let s = a.socket {
            unwatch(s.getInt32(ZMQ_FD))
            ZMQMonitor.stop(watching: s)
            s.close()
        }
        if let m = a.monitor {
            unwatch(m.socket.getInt32(ZMQ_FD))
            m.socket.close()
        }
        a.socket = nil
        a.monitor = nil
        if a.connected {
            a.connected = false
            stats.withLock { $0.connected -= 1 }
        }
    }

    private func watch(_ fd: Int32, tag: UInt64) {
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = tag
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
    }

    private func unwatch(_ fd: Int32) {
        var ev = epoll_event()
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev)
    }

    private func scheduleReconnect(_ a: SimAgent, now: Int64) {
        guard a.reconnectAt == nil else { return }
        a.reconnectAt = now + Int64(a.backoff.next())
    }

    // MARK: Events

    private func handleMonitor(_ a: SimAgent) {
        guard let m = a.monitor else { return }
        while let e = m.next() {
            let now = monotonicNow()
            switch e.event {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                a.backoff.reset()
                a.reconnectAt = nil
                if !a.connected {
                    a.connected = true
                    let epoch = control.epoch.load(ordering: .relaxed)
                    let first = a.handshakeEpoch < epoch
                    a.handshakeEpoch = epoch
                    let at = seconds(now)
                    let local = a.slot
                    stats.withLock {
                        $0.connected += 1
                        $0.handshakes += 1
                        if first && !a.joining { $0.epochHandshakeAt[local] = at }
                    }
                }
                if a.joining {
                    a.nextJoinAt = now
                } else if a.reportWaiting || !a.unacked.isEmpty {
                    a.reportWaiting = false
                    sendReport(a, now: now)
                    resendEvents(a, now: now, all: true)
                }
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                stats.withLock { $0.authFailures += 1 }
                lost(a, now: now)
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, ZMQ_EVENT_DISCONNECTED, ZMQ_EVENT_CLOSED, ZMQ_EVENT_CONNECT_RETRIED:
                lost(a, now: now)
            default:
                break
            }
        }
    }

    private func lost(_ a: SimAgent, now: Int64) {
        if a.connected {
            a.connected = false
            stats.withLock {
                $0.connected -= 1
                $0.disconnects += 1
            }
        }
        scheduleReconnect(a, now: now)
    }

    /// Reads every waiting message. Called on a readiness event and after each send: libzmq may consume the
    /// `ZMQ_FD` signal of a message that arrived during a send.
    private func drain(_ a: SimAgent) {
        while let s = a.socket, s.getInt32(ZMQ_EVENTS) & Int32(ZMQ_POLLIN) != 0 {
            guard let received = try? s.receive(), let frame = received.frames.last else { break }
            guard let message = try? codec.decode(frame) else { continue }
            handle(message, agent: a)
        }
    }

    private func handle(_ message: WireMessage, agent a: SimAgent) {
        let now = monotonicNow()
        switch message {
        case .joinResult(let e):
            switch e.body.status {
            case .accepted:
                guard a.joining else { return }
                a.identity.enrolledWith = serverKeyZ85
                a.joining = false
                stats.withLock { $0.joinedThisRun += 1 }
                // As the agent does: a new connection with the host id as routing id.
                close(a)
                a.backoff.reset()
                a.reconnectAt = nil
                a.reportWaiting = true
                open(a)
            case .pending, .refused:
                stats.withLock { $0.joinRefusals += 1 }
                let retry = (e.body.retryAfterSeconds ?? 30) * (0.9 + 0.2 * a.rng.unit())
                a.nextJoinAt = now + Int64(retry * 1000)
            case .unknownKey:
                guard !a.joining else { return }
                a.identity.enrolledWith = nil
                a.joining = true
                close(a)
                open(a)
            }
        case .failoverCommand(let e):
            let decision = a.gate.evaluate(e.body, applied: CommandVersion(epoch: a.appliedEpoch, generation: a.applied), now: Date())
            let ack: FailoverAck
            switch decision {
            case .accept(let directive):
                let first = a.applied == 0
                a.applied = directive.generation
                a.appliedEpoch = directive.epoch
                for (registry, mirrors) in directive.mirrors { a.order[registry] = mirrors }
                ack = FailoverAck(generation: directive.generation, outcome: .applied, reason: "emulated", appliedGeneration: directive.generation)
                let at = seconds(now)
                let local = a.slot
                if first { stats.withLock { $0.acceptedAt[local] = at } }
            case .confirm(let version):
                a.appliedEpoch = version.epoch
                ack = FailoverAck(generation: version.generation, outcome: .ignored, reason: "epoch \(version.epoch) kept", appliedGeneration: a.applied)
            case .ignore(let g, let reason):
                ack = FailoverAck(generation: g, outcome: .ignored, reason: reason, appliedGeneration: a.applied)
            case .reject(let g, let reason):
                ack = FailoverAck(generation: g ?? 0, outcome: .rejected, reason: reason, appliedGeneration: a.applied)
                stats.withLock { $0.rejectReasons[String(reason.prefix(80)), default: 0] += 1 }
            }
            stats.withLock {
                $0.commandsReceived += 1
                $0.acksByOutcome[ack.outcome.rawValue, default: 0] += 1
            }
            send(a, Envelope(host: a.identity.hostID, seq: 0, sentAt: Date(), body: ack))
        case .eventsAck(let e):
            var acked = 0
            var list: [AckedEvent] = []
            for seq in e.body.seqs where a.unacked.removeValue(forKey: seq) != nil {
                acked += 1
                if keepAckedEvents { list.append(AckedEvent(agent: Int32(a.index), seq: seq)) }
            }
            stats.withLock {
                $0.eventsAcked += acked
                $0.ackedEvents.append(contentsOf: list)
            }
        default:
            break
        }
    }

    // MARK: Timers

    /// Runs what is due for each agent, and counts (in the same pass) the enrolled agents and the events
    /// waiting for an ack.
    private func scan(now: Int64) {
        let faults = control.faultsOn.load(ordering: .relaxed)
        var unacked = 0
        var enrolled = 0
        for a in agents {
            unacked += a.unacked.count
            if !a.joining { enrolled += 1 }
            if let at = a.reconnectAt, now >= at {
                a.reconnectAt = nil
                if let s = a.socket {
                    s.disconnect(settings.endpoint)
                    try? s.connect(settings.endpoint)
                } else {
                    open(a)
                }
            }
            if a.joining {
                if a.connected, now >= a.nextJoinAt {
                    a.nextJoinAt = now + 30_000
                    sendJoin(a)
                }
                continue
            }
            if now >= a.nextReportAt {
                a.nextReportAt += Int64(Double(intervalMs) * (0.95 + 0.1 * a.rng.unit()))
                if a.nextReportAt <= now { a.nextReportAt = now + intervalMs }
                if faults, settings.faults.contains(where: { $0.kind == .silent && $0.applies(index: a.index, labels: a.identity.labels) }) { continue }
                if a.connected { sendReport(a, now: now) } else { a.reportWaiting = true }
            }
            if a.connected, !a.unacked.isEmpty { resendEvents(a, now: now, all: false) }
        }
        stats.withLock {
            $0.unackedNow = unacked
            $0.enrolledNow = enrolled
        }
    }

    private func sendJoin(_ a: SimAgent) {
        let body = JoinRequest(host: HostIdentity(id: a.identity.hostID, labels: a.identity.labels), publicKey: a.identity.keys.publicKey.z85, token: token, agentVersion: RegwatchVersion.current)
        send(a, Envelope(host: a.identity.hostID, seq: 1, sentAt: Date(), body: body))
        stats.withLock { $0.joinsSent += 1 }
    }

    private func sendReport(_ a: SimAgent, now: Int64) {
        let faults = control.faultsOn.load(ordering: .relaxed)
        var conditions = ReportFactory.Conditions()
        if faults {
            for f in settings.faults where f.applies(index: a.index, labels: a.identity.labels) {
                switch f.kind {
                case .mirrorDown: conditions.mirrorDown = true
                case .quota: conditions.quotaExhausted = true
                case .silent: break
                }
            }
        }
        let date = Date()
        let report = factory.report(
            identity: a.identity, interval: settings.interval, now: date, applied: a.applied, order: a.order,
            conditions: conditions, pendingEvents: a.unacked.count, rng: &a.rng)
        a.reportSeq += 1
        let ok = send(a, Envelope(host: a.identity.hostID, seq: a.reportSeq, sentAt: date, body: report))
        let epoch = control.epoch.load(ordering: .relaxed)
        let first = ok && a.reportEpoch < epoch
        if first { a.reportEpoch = epoch }
        let local = a.slot
        let at = seconds(now)
        stats.withLock {
            if ok { $0.reportsSent += 1 } else { $0.reportsDropped += 1 }
            if first { $0.epochReportAt[local] = at }
        }
        if settings.eventsPerInterval > 0, control.eventsOn.load(ordering: .relaxed) {
            var batch: [PullEvent] = []
            for _ in 0..<settings.eventsPerInterval {
                a.eventSeq += 1
                let event = factory.pullEvent(seq: a.eventSeq, now: date, rng: &a.rng)
                a.unacked[a.eventSeq] = (event, now)
                batch.append(event)
            }
            a.eventBatchSeq += 1
            send(a, Envelope(host: a.identity.hostID, seq: a.eventBatchSeq, sentAt: date, body: PullEventBatch(events: batch)))
            stats.withLock { $0.eventsSent += batch.count }
        }
    }

    /// Sends unacknowledged events again: those older than 10 s, or all of them after a reconnect (as
    /// the agent's publisher does).
    private func resendEvents(_ a: SimAgent, now: Int64, all: Bool) {
        let due = a.unacked.filter { all || now - $0.value.sentAt >= 10_000 }.sorted { $0.key < $1.key }.prefix(500)
        guard !due.isEmpty else { return }
        for (seq, entry) in due { a.unacked[seq] = (entry.event, now) }
        a.eventBatchSeq += 1
        send(a, Envelope(host: a.identity.hostID, seq: a.eventBatchSeq, sentAt: Date(), body: PullEventBatch(events: due.map(\.value.event))))
        stats.withLock { $0.eventsResent += due.count }
    }

    @discardableResult
    private func send<Body: WireBody>(_ a: SimAgent, _ envelope: Envelope<Body>) -> Bool {
        guard let s = a.socket, let frame = try? codec.encode(envelope) else { return false }
        let ok = (try? s.send(frame)) ?? false
        drain(a)
        return ok
    }

    // MARK: Clock


    func seconds(_ ms: Int64) -> Double { Double(ms - startMs) / 1000 }
}
