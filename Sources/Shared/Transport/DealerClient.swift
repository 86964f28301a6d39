import CZeroMQ
import Logging
import Synchronization

/// The agent's end of the transport: a DEALER connected to the aggregator, routing id = host id,
/// CURVE with the aggregator's key pinned.
///
/// libzmq's own reconnect is switched off (`ZMQ_RECONNECT_IVL=-1`); this type reconnects with
/// ``ReconnectBackoff`` so a fleet does not retry in lockstep, and logs why each attempt failed: a key the
/// aggregator refuses (ZAP 400) reads differently from a wrong server key or an unreachable host.
/// `ZMQ_IMMEDIATE` keeps messages in our bounded outbox until a connection is up.
///
/// With several endpoints (aggregators sharing one database) it talks to one at a time, starting at a
/// random one so a fleet spreads over them, and moves to another (chosen at random, so a dead aggregator's
/// agents spread over the rest) whenever a connection fails, is refused or times out.
public final class DealerClient: Sendable {
    public struct Configuration: Sendable {
        /// The aggregators, equivalent; at least one.
        public var endpoints: [String]
        /// The first endpoint (the only one of a single-aggregator setup).
        public var endpoint: String { endpoints[0] }
        public var hostID: String
        public var security: DealerSecurity
        public var limits: TransportLimits
        public var backoff: ReconnectBackoff
        /// The routing id to connect with first: the host id, or a joining id (``JoiningPeer``) while
        /// the key is not enrolled yet.
        public var routingID: String

        public init(endpoint: String, hostID: String, security: DealerSecurity, limits: TransportLimits = .init(), backoff: ReconnectBackoff = .init(), routingID: String? = nil) {
            self.init(endpoints: [endpoint], hostID: hostID, security: security, limits: limits, backoff: backoff, routingID: routingID)
        }

        public init(endpoints: [String], hostID: String, security: DealerSecurity, limits: TransportLimits = .init(), backoff: ReconnectBackoff = .init(), routingID: String? = nil) {
            precondition(!endpoints.isEmpty, "a dealer needs an endpoint")
            self.endpoints = endpoints
            self.hostID = hostID
            self.routingID = routingID ?? hostID
            self.security = security
            self.limits = limits
            self.backoff = backoff
        }
    }

    public enum State: String, Sendable, Equatable {
        case connecting, connected, waitingToReconnect = "waiting_to_reconnect", stopped
    }

    public struct Statistics: Sendable, Equatable {
        public var sent = 0
        public var received = 0
        public var inboundDropped = 0
        public var handshakes = 0
        public var authFailures = 0
        public var protocolFailures = 0
        public var reconnects = 0
        public var state = State.connecting
    }

    public let configuration: Configuration
    public let inbound: InboundStream
    public let events: AsyncStream<TransportEvent>
    let inboundContinuation: AsyncStream<[InboundMessage]>.Continuation
    let eventContinuation: AsyncStream<TransportEvent>.Continuation
    let logger: Logger
    let outbox: Outbox
    let stats = Mutex(Statistics())
    private let runtime = Mutex<IOThread?>(nil)

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let (stream, continuation) = AsyncStream<[InboundMessage]>.makeStream(bufferingPolicy: .bufferingOldest(configuration.limits.inboundBatches))
        inbound = InboundStream(batches: stream)
        inboundContinuation = continuation
        (events, eventContinuation) = AsyncStream<TransportEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        outbox = Outbox(maxMessages: configuration.limits.outboxMessages, maxBytes: configuration.limits.outboxBytes)
    }

    public var statistics: Statistics { stats.withLock { $0 } }

    var isStarted: Bool { runtime.withLock { $0 != nil } }

    /// Messages queued and not yet accepted by the socket.
    public var queued: Int { outbox.depth }

    /// Creates the socket, starts connecting and starts the I/O thread. An endpoint or key libzmq rejects
    /// is thrown here; an unreachable aggregator is not an error (the client keeps retrying).
    public func start() throws(TransportError) {
        guard !isStarted else { return }
        guard HostID.isValid(configuration.hostID) else {
            throw .invalidKey(what: "host id", reason: "\"\(configuration.hostID.prefix(64))\" is not a valid host id (letters, digits, . _ -; at most 63)")
        }
        if case .curve = configuration.security, !ZMQContext.hasCurve {
            throw .invalidKey(what: "CURVE", reason: "this libzmq was built without CURVE (libsodium); install one with it (Debian: libzmq5)")
        }
        let context = ZMQContext()
        let loop: DealerLoop
        do {
            loop = try DealerLoop(client: self, context: context)
        } catch {
            context.terminate()
            throw error
        }
        if case .insecure = configuration.security {
            logger.critical("ZeroMQ DEALER running WITHOUT CURVE: reports travel unencrypted and unauthenticated", metadata: ["endpoint": "\(configuration.endpoint)"])
        }
        let thread = IOThread(name: "regwatch-dealer") { loop.run(); context.terminate() }
        runtime.withLock { $0 = thread }
    }

    /// Queues a message; false when the outbox is full (the caller counts the drop).
    @discardableResult
    public func trySend(_ payload: [UInt8]) -> Bool {
        outbox.tryEnqueue(Outbox.Item(peer: nil, payload: payload)) == .queued
    }

    /// Queues a message, waiting while the outbox is full.
    public func send(_ payload: [UInt8]) async throws {
        let item = Outbox.Item(peer: nil, payload: payload)
        if outbox.tryEnqueue(item) == .queued { return }
        try await outbox.enqueue(item)
    }

    /// Reconnects with another routing id (joined: the host id) and, when given, another key pair
    /// (rotated). Messages sent after this call leave on the new connection. The routing id should
    /// differ from the current one: libzmq's ROUTER stalls a connection that arrives with a routing id
    /// an older connection still holds.
    public func switchIdentity(routingID: String, keys: CurveKeyPair? = nil) {
        identityChange.withLock { $0 = (routingID, keys) }
        outbox.wake()
    }

    let identityChange = Mutex<(routingID: String, keys: CurveKeyPair?)?>(nil)

    public func shutdown() async {
        let thread = runtime.withLock { $0 }
        outbox.close()
        await thread?.finished()
        stats.withLock { $0.state = .stopped }
        inboundContinuation.finish()
        eventContinuation.finish()
    }
}

/// The state only the dealer's I/O thread touches.
final class DealerLoop: @unchecked Sendable {
    unowned let client: DealerClient
    let context: ZMQContext
    /// Replaced whole by an identity change (``apply(_:)``): a new socket with a new monitor, so no event
    /// of the old connection can be mistaken for one of the new.
    var socket: ZMQSocket
    var monitor: ZMQMonitor
    var backoff: ReconnectBackoff
    var reconnectAt: Int64?
    var backlog: [Outbox.Item] = []
    var backlogIndex = 0
    var connected = false
    /// The key pair new sockets use (rotation replaces it).
    var currentKeys: CurveKeyPair?
    /// The index in `endpoints` of the aggregator connected to (or being connected to).
    var current: Int

    init(client: DealerClient, context: ZMQContext) throws(TransportError) {
        self.client = client
        self.context = context
        let config = client.configuration
        backoff = config.backoff
        current = Int.random(in: 0..<config.endpoints.count)
        if case .curve(_, let clientKeys) = config.security { currentKeys = clientKeys }
        (socket, monitor) = try Self.connect(context: context, config: config, endpoint: config.endpoints[current], routingID: config.routingID, keys: currentKeys)
    }

    var endpoint: String { client.configuration.endpoints[current] }

    /// A DEALER with the configured options, its monitor, connecting to `endpoint`.
    static func connect(context: ZMQContext, config: DealerClient.Configuration, endpoint: String, routingID: String, keys: CurveKeyPair?) throws(TransportError) -> (ZMQSocket, ZMQMonitor) {
        let socket = try ZMQSocket(context: context, type: ZMQ_DEALER)
        let limits = config.limits
        try socket.set(ZMQ_ROUTING_ID, string: routingID)
        try socket.set(ZMQ_LINGER, limits.lingerMs)
        try socket.set(ZMQ_MAXMSGSIZE, limits.maxMessageSize)
        try socket.set(ZMQ_SNDHWM, limits.sendHighWaterMark)
        try socket.set(ZMQ_RCVHWM, limits.receiveHighWaterMark)
        try socket.set(ZMQ_HEARTBEAT_IVL, limits.heartbeatIntervalMs)
        try socket.set(ZMQ_HEARTBEAT_TIMEOUT, limits.heartbeatTimeoutMs)
        try socket.set(ZMQ_HANDSHAKE_IVL, limits.handshakeTimeoutMs)
        try socket.set(ZMQ_IMMEDIATE, Int32(1))
        try socket.set(ZMQ_RECONNECT_IVL, Int32(-1))
        if case .curve(let serverKey, _) = config.security, let keys {
            try socket.set(ZMQ_CURVE_SERVERKEY, string: serverKey.z85)
            try socket.set(ZMQ_CURVE_PUBLICKEY, string: keys.publicKey.z85)
            try socket.set(ZMQ_CURVE_SECRETKEY, string: keys.secretZ85)
        }
        let monitor = try ZMQMonitor(context: context, watching: socket)
        try socket.connect(endpoint)
        return (socket, monitor)
    }

    func run() {
        var items = [
            zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
            zmq_pollitem_t(socket: monitor.socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
            zmq_pollitem_t(socket: nil, fd: client.outbox.wakeFD, events: Int16(ZMQ_POLLIN), revents: 0),
        ]
        var batch: [InboundMessage] = []
        while true {
            if client.outbox.isClosed { break }
            if let change = client.identityChange.withLock({ c in defer { c = nil }; return c }) {
                apply(change)
                items[0].socket = socket.handle
                items[1].socket = monitor.socket.handle
            }
            let blocked = flush()
            items[0].events = Int16(ZMQ_POLLIN) | (blocked ? Int16(ZMQ_POLLOUT) : 0)
            var timeout: Int = -1
            if let at = reconnectAt { timeout = Int(max(0, at - monotonicMs())) }
            let sleep = client.outbox.prepareToSleep() || blocked
            let rc = zmq_poll(&items, 3, sleep ? timeout : 0)
            if sleep { client.outbox.wokeUp() }
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                client.logger.error("zmq_poll failed", metadata: ["error": "\(String(cString: zmq_strerror(zmq_errno())))"])
                break
            }
            if items[1].revents & Int16(ZMQ_POLLIN) != 0 { handleMonitor() }
            if items[0].revents & Int16(ZMQ_POLLIN) != 0 { receiveAll(into: &batch) }
            if let at = reconnectAt, monotonicMs() >= at { reconnect() }
        }
        ZMQMonitor.stop(watching: socket)
        socket.close()
        monitor.socket.close()
    }

    /// Hands queued messages to the socket until it would block. Returns true when blocked with a backlog.
    private func flush() -> Bool {
        if backlogIndex >= backlog.count {
            backlog = client.outbox.takeAll()
            backlogIndex = 0
            if backlog.isEmpty { return false }
        }
        var sent = 0, bytes = 0
        var blocked = false
        while backlogIndex < backlog.count {
            let item = backlog[backlogIndex]
            let ok: Bool
            do {
                ok = try socket.send(item.payload)
            } catch {
                client.logger.error("send failed; message dropped", metadata: ["error": "\(error)"])
                ok = true
            }
            if !ok { blocked = true; break }
            sent += 1
            bytes += item.bytes
            backlogIndex += 1
            if backlogIndex == backlog.count {
                backlog = client.outbox.takeAll()
                backlogIndex = 0
            }
        }
        client.outbox.release(count: sent, bytes: bytes)
        if sent > 0 { client.stats.withLock { $0.sent += sent } }
        return blocked
    }

    private func receiveAll(into batch: inout [InboundMessage]) {
        while batch.count < 1024, let message = try? socket.receive() {
            guard let payload = message.frames.last else { continue }
            batch.append(InboundMessage(peer: WireProtocol.aggregatorSender, authenticatedHost: nil, payload: payload[...]))
        }
        let count = batch.count
        guard count > 0 else { return }
        client.stats.withLock { $0.received += count }
        if case .dropped = client.inboundContinuation.yield(batch) { client.stats.withLock { $0.inboundDropped += 1 } }
        batch = []
    }

    private func handleMonitor() {
        let endpoint = self.endpoint
        while let event = monitor.next() {
            switch event.event {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                connected = true
                backoff.reset()
                reconnectAt = nil
                client.stats.withLock {
                    $0.handshakes += 1
                    $0.state = .connected
                }
                client.logger.info("connected to aggregator", metadata: ["endpoint": "\(endpoint)", "host.id": "\(client.configuration.hostID)"])
                client.eventContinuation.yield(.connected(endpoint))
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                client.stats.withLock { $0.authFailures += 1 }
                client.logger.error("aggregator refused this agent's key (ZAP status \(event.value)): it was revoked or rejected; see `regwatch-aggregator keys list` there", metadata: [
                    "endpoint": "\(endpoint)", "host.id": "\(client.configuration.hostID)",
                ])
                client.eventContinuation.yield(.handshakeFailed(.auth(status: Int(event.value))))
                scheduleReconnect()
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                client.stats.withLock { $0.protocolFailures += 1 }
                client.logger.error("handshake with aggregator failed (protocol error \(event.value)): wrong aggregator.serverKey, or CURVE on one side only", metadata: [
                    "endpoint": "\(endpoint)",
                ])
                client.eventContinuation.yield(.handshakeFailed(.protocolError(code: Int(event.value))))
                scheduleReconnect()
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                client.eventContinuation.yield(.handshakeFailed(.other))
                scheduleReconnect()
            case ZMQ_EVENT_DISCONNECTED:
                client.stats.withLock { $0.state = .waitingToReconnect }
                if connected {
                    client.logger.warning("disconnected from aggregator", metadata: ["endpoint": "\(endpoint)"])
                    client.eventContinuation.yield(.disconnected(endpoint))
                }
                scheduleReconnect()
            case ZMQ_EVENT_CLOSED, ZMQ_EVENT_CONNECT_RETRIED:
                scheduleReconnect()
            default:
                client.logger.trace("monitor event", metadata: ["event": "\(event.event)", "value": "\(event.value)"])
            }
        }
    }

    private func scheduleReconnect() {
        connected = false
        guard reconnectAt == nil else { return }
        let delay = backoff.next()
        reconnectAt = monotonicMs() + Int64(delay)
        client.stats.withLock { $0.state = .waitingToReconnect }
        client.logger.debug("reconnecting to aggregator", metadata: ["after.ms": "\(delay)"])
        client.eventContinuation.yield(.reconnectScheduled(afterMs: delay))
    }

    /// Drops the current connection and connects again as `change` says, on a new socket, before anything
    /// else is sent. The keys stay those of the last change (or the configuration) unless `change` has new ones.
    private func apply(_ change: (routingID: String, keys: CurveKeyPair?)) {
        if let keys = change.keys { currentKeys = keys }
        ZMQMonitor.stop(watching: socket)
        socket.close()
        monitor.socket.close()
        do {
            (socket, monitor) = try Self.connect(context: context, config: client.configuration, endpoint: endpoint, routingID: change.routingID, keys: currentKeys)
        } catch {
            client.logger.error("cannot reconnect with the new identity", metadata: ["error": "\(error)"])
            return
        }
        connected = false
        reconnectAt = nil
        backoff.reset()
        client.stats.withLock { $0.state = .connecting }
        client.logger.info("reconnecting to the aggregator with a new identity", metadata: ["routing.id": "\(change.routingID.prefix(64))", "new.key": "\(change.keys != nil)"])
    }


    /// Connects again after the backoff: to another aggregator when there are several.
    private func reconnect() {
        reconnectAt = nil
        socket.disconnect(endpoint)
        let endpoints = client.configuration.endpoints
        if endpoints.count > 1 {
            let from = endpoint
            current = (current + Int.random(in: 1..<endpoints.count)) % endpoints.count
            client.logger.info("moving to another aggregator", metadata: ["from": "\(from)", "to": "\(endpoint)"])
        }
        do {
            try socket.connect(endpoint)
        } catch {
            client.logger.error("reconnect failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
        }
        client.stats.withLock {
            $0.reconnects += 1
            $0.state = .connecting
        }
    }
}
