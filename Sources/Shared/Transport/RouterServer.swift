import CZeroMQ
import Logging
import Metrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The aggregator's end of the transport: a ROUTER socket bound to one endpoint, CURVE by default,
/// with a ZAP handler that admits only keys the ``ZAPAuthenticator`` accepts.
///
/// All socket work happens on one I/O thread. Received messages arrive on ``inbound``; ``send(to:payload:)``
/// may be called from any task. Without an authenticator on a CURVE socket nobody is admitted
/// (`ZMQ_ZAP_ENFORCE_DOMAIN=1`), which is the safe failure.
public final class RouterServer: Sendable {
    public struct Configuration: Sendable {
        public var endpoint: String
        public var security: RouterSecurity
        public var limits: TransportLimits
        public var zapDomain: String

        public init(endpoint: String, security: RouterSecurity, limits: TransportLimits = .init(), zapDomain: String = "regwatch") {
            self.endpoint = endpoint
            self.security = security
            self.limits = limits
            self.zapDomain = zapDomain
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var received = 0
        /// Batches handed to ``inbound``: `received / inboundBatches` is the average batch size.
        public var inboundBatches = 0
        public var sent = 0
        /// Outbound messages dropped: unknown peer, peer at its high-water mark, or outbox full.
        public var sendDropped = 0
        /// Inbound batches dropped because the consumer fell behind.
        public var inboundDropped = 0
        /// Messages whose routing id differs from the host id bound to their key; dropped, connection closed.
        public var identityMismatch = 0
        /// Connections closed by ``disconnect(peer:reason:)``.
        public var disconnected = 0
        public var authAccepted = 0
        public var authRejected = 0
        public var connectedPeers = 0
    }

    public let configuration: Configuration
    public let inbound: InboundStream
    public let events: AsyncStream<TransportEvent>
    let inboundContinuation: AsyncStream<[InboundMessage]>.Continuation
    let eventContinuation: AsyncStream<TransportEvent>.Continuation
    let authenticator: (any ZAPAuthenticator)?
    let logger: Logger
    let outbox: Outbox
    let stats = Mutex(Statistics())
    private let runtime = Mutex<(thread: IOThread?, bound: String?)>((nil, nil))

    public init(configuration: Configuration, authenticator: (any ZAPAuthenticator)?, logger: Logger) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.logger = logger
        let (stream, continuation) = AsyncStream<[InboundMessage]>.makeStream(bufferingPolicy: .bufferingOldest(configuration.limits.inboundBatches))
        inbound = InboundStream(batches: stream)
        inboundContinuation = continuation
        (events, eventContinuation) = AsyncStream<TransportEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        outbox = Outbox(maxMessages: configuration.limits.outboxMessages, maxBytes: configuration.limits.outboxBytes)
    }

    public var statistics: Statistics { stats.withLock { $0 } }

    /// The endpoint actually bound (with the port chosen for `tcp://…:*`), once started.
    public var boundEndpoint: String? { runtime.withLock { $0.bound } }

    /// Binds and starts the I/O thread. Errors (an endpoint libzmq rejects, a port in use) are thrown here.
    @discardableResult
    public func start() throws(TransportError) -> String {
        if let bound = boundEndpoint { return bound }
        if case .curve = configuration.security, !ZMQContext.hasCurve {
            throw .invalidKey(what: "CURVE", reason: "this libzmq was built without CURVE (libsodium); install one with it (Debian: libzmq5)")
        }
        let context = ZMQContext()
        let loop: RouterLoop
        do {
            loop = try RouterLoop(server: self, context: context)
        } catch {
            context.terminate()
            throw error
        }
        let bound = loop.socket.lastEndpoint
        runtime.withLock { $0.bound = bound }
        let thread = IOThread(name: "regwatch-router") { loop.run(); context.terminate() }
        runtime.withLock { $0.thread = thread }
        eventContinuation.yield(.listening(bound))
        if case .insecure = configuration.security {
            logger.critical("ZeroMQ ROUTER running WITHOUT CURVE: traffic is unencrypted and any client is admitted", metadata: ["endpoint": "\(bound)"])
        }
        return bound
    }

    /// Queues a message for the agent with this routing id. Returns false when the outbox is full (counted).
    @discardableResult
    public func trySend(to peer: String, payload: [UInt8]) -> Bool {
        switch outbox.tryEnqueue(Outbox.Item(peer: Array(peer.utf8), payload: payload)) {
        case .queued: return true
        case .full, .closed:
            stats.withLock { $0.sendDropped += 1 }
            return false
        }
    }

    /// Queues a message, waiting while the outbox is full.
    public func send(to peer: String, payload: [UInt8]) async throws {
        let item = Outbox.Item(peer: Array(peer.utf8), payload: payload)
        if outbox.tryEnqueue(item) == .queued { return }
        try await outbox.enqueue(item)
    }

    /// Closes the connection of the peer with this routing id, if it has one (a revoked key's open
    /// connection). libzmq has no call for that on a ROUTER, so the I/O thread shuts down the TCP socket
    /// the peer's last message came from, after checking it still has the same remote address, and
    /// libzmq tears the connection down as if the peer had gone. Returns at once; done within a poll.
    /// - Parameter reason: why, for the log line.
    public func disconnect(peer: String, reason: String) {
        disconnects.withLock { $0.append((peer, reason)) }
        outbox.wake()
    }

    let disconnects = Mutex<[(peer: String, reason: String)]>([])

    /// Stops the I/O thread, closes the socket and ends ``inbound`` and ``events``.
    public func shutdown() async {
        let thread = runtime.withLock { $0.thread }
        outbox.close()
        await thread?.finished()
        inboundContinuation.finish()
        eventContinuation.finish()
    }
}

/// The state only the router's I/O thread touches.
final class RouterLoop: @unchecked Sendable {
    unowned let server: RouterServer
    let socket: ZMQSocket
    let monitor: ZMQMonitor
    let zap: ZMQSocket?
    // libzmq reports handshake success without the connection's fd, so peers are counted, not tracked:
    // every accepted connection ends in one DISCONNECTED, and the failed ones also report a handshake failure.
    var handshakesSucceeded = 0
    var handshakesFailed = 0
    var disconnects = 0
    var lastPeer: (bytes: [UInt8], string: String) = ([], "")
    /// The TCP socket each peer's messages last came from, with its remote address at that time.
    var peerSockets: [String: (fd: Int32, address: [UInt8])] = [:]
    var bufferHint = 4096
    let curve: Bool

    init(server: RouterServer, context: ZMQContext) throws(TransportError) {
        self.server = server
        let config = server.configuration
        if case .curve = config.security { curve = true } else { curve = false }
        var zapSocket: ZMQSocket?
        if case .curve = config.security, server.authenticator != nil {
            // The ZAP handler must be bound before the ROUTER binds, or early handshakes find nobody.
            let z = try ZMQSocket(context: context, type: ZMQ_REP)
            try z.set(ZMQ_LINGER, Int32(0))
            try z.bind(ZAPProtocol.endpoint)
            zapSocket = z
        }
        zap = zapSocket
        socket = try ZMQSocket(context: context, type: ZMQ_ROUTER)
        let limits = config.limits
        try socket.set(ZMQ_LINGER, limits.lingerMs)
        try socket.set(ZMQ_BACKLOG, limits.acceptBacklog)
        try socket.set(ZMQ_MAXMSGSIZE, limits.maxMessageSize)
        try socket.set(ZMQ_SNDHWM, limits.sendHighWaterMark)
        try socket.set(ZMQ_RCVHWM, limits.receiveHighWaterMark)
        // No ZMTP heartbeats on this side (see ``TransportLimits/heartbeatIntervalMs``): the kernel watches
        // each agent connection instead.
        try socket.set(ZMQ_TCP_KEEPALIVE, Int32(1))
        try socket.set(ZMQ_TCP_KEEPALIVE_IDLE, limits.keepaliveIdleSeconds)
        try socket.set(ZMQ_TCP_KEEPALIVE_INTVL, limits.keepaliveIntervalSeconds)
        try socket.set(ZMQ_TCP_KEEPALIVE_CNT, limits.keepaliveCount)
        try socket.set(ZMQ_HANDSHAKE_IVL, limits.handshakeTimeoutMs)
        try socket.set(ZMQ_ROUTER_MANDATORY, Int32(1))
        // A connection that arrives with a routing id an older one still holds takes it over. Without
        // this, libzmq keeps the old one and stalls the new one for good (it even reads the new one's
        // first message as its routing id): an agent reconnecting before its dead connection timed out,
        // or a rotated key coming back, would never be heard again. A connection whose routing id is not
        // the host id its key is bound to gets nothing in (ingest checks every message) and is told to join again.
        try socket.set(ZMQ_ROUTER_HANDOVER, Int32(1))
        if case .curve(let keys) = config.security {
            try socket.set(ZMQ_CURVE_SERVER, Int32(1))
            try socket.set(ZMQ_CURVE_SECRETKEY, string: keys.secretZ85)
            try socket.set(ZMQ_ZAP_DOMAIN, string: config.zapDomain)
            try socket.set(RW_ZMQ_ZAP_ENFORCE_DOMAIN, Int32(1))
        }
        monitor = try ZMQMonitor(context: context, watching: socket)
        try socket.bind(config.endpoint)
    }

    func run() {
        var items = [
            zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
            zmq_pollitem_t(socket: monitor.socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
            zmq_pollitem_t(socket: nil, fd: server.outbox.wakeFD, events: Int16(ZMQ_POLLIN), revents: 0),
        ]
        if let zap { items.append(zmq_pollitem_t(socket: zap.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)) }
        let batchLimit = 1024
        let pause = server.configuration.limits.inboundPauseMicroseconds
        let smallBatch = server.configuration.limits.smallInboundBatch
        var batch: [InboundMessage] = []
        while true {
            // Flush what senders queued; sleep in poll only when there is nothing left to do.
            sendQueued()
            closeRequested()
            if server.outbox.isClosed { break }
            let sleep = server.outbox.prepareToSleep()
            let rc = zmq_poll(&items, Int32(items.count), sleep ? -1 : 0)
            if sleep { server.outbox.wokeUp() }
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                server.logger.error("zmq_poll failed", metadata: ["error": "\(String(cString: zmq_strerror(zmq_errno())))"])
                break
            }
            if items.count > 3, items[3].revents & Int16(ZMQ_POLLIN) != 0 { handleZAP() }
            if items[1].revents & Int16(ZMQ_POLLIN) != 0 { handleMonitor() }
            if items[0].revents & Int16(ZMQ_POLLIN) != 0 {
                let received = receiveAll(into: &batch, limit: batchLimit)
                if received > 0, received < smallBatch, pause > 0 {
                    // Light traffic: let the next messages gather in libzmq's pipes (see inboundPauseMicroseconds).
                    sendQueued()
                    var ts = timespec(tv_sec: pause / 1_000_000, tv_nsec: (pause % 1_000_000) * 1_000)
                    nanosleep(&ts, nil)
                }
            }
        }
        ZMQMonitor.stop(watching: socket)
        socket.close()
        monitor.socket.close()
        zap?.close()
    }

    /// Receives what is waiting (up to `limit`) and hands it over as one batch; returns its size.
    @discardableResult
    private func receiveAll(into batch: inout [InboundMessage], limit: Int) -> Int {
        var mismatched = 0
        var yielded = false
        // Locals, not properties: keeps the hot loop free of dynamic exclusivity checks.
        var lastPeer = self.lastPeer
        defer { self.lastPeer = lastPeer }
        let curve = self.curve
        // Payloads of one batch go into one buffer; messages are slices of it.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(bufferHint)
        var received: [(peer: String, range: Range<Int>, userID: String?, fd: Int32)] = []
        var lastFD: Int32 = -1, lastFDPeer = ""
        while received.count < limit {
            guard let message = socket.receiveRouted(into: &buffer, readUserID: curve, lastPeer: &lastPeer) else {
                // Under load, let the libzmq I/O thread fill the pipe once more before handing the batch
                // over: bigger batches mean fewer wake-ups downstream (measured by `make bench`).
                if !yielded, !received.isEmpty {
                    yielded = true
                    sched_yield()
                    continue
                }
                break
            }
            if message.fd >= 0, message.fd != lastFD || message.peer != lastFDPeer {
                lastFD = message.fd
                lastFDPeer = message.peer
                // Once per peer and batch: which connection is this? A new one may even reuse the old
                // one's descriptor number, so the remote address (with its port) is what tells them apart.
                let address = Self.remoteAddress(message.fd)
                if let old = peerSockets[message.peer], old.fd != message.fd || old.address != address {
                    if old.fd != message.fd {
                        // A new connection took this routing id over (ROUTER_HANDOVER): libzmq leaves the
                        // old one open but unread, so its peer would hang until its heartbeat timeout.
                        closeIfUnchanged(old)
                    }
                    peerSockets[message.peer] = (message.fd, address)
                } else if peerSockets[message.peer] == nil {
                    peerSockets[message.peer] = (message.fd, address)
                }
            }
            // A routing id that is not the host id ZAP bound the key to, neither of them a joining id:
            // a peer posing as another host. Nothing from it is taken, and its connection is closed.
            if let host = message.userID, host != message.peer, !JoiningPeer.isJoining(host), !JoiningPeer.isJoining(message.peer) {
                mismatched += 1
                if mismatched == 1 {
                    server.logger.warning("closing a connection whose routing id is not the host id enrolled for its key", metadata: [
                        "peer": "\(message.peer.prefix(64))", "host.id": "\(host)",
                    ])
                }
                Counter(label: MetricNames.wireRejectedTotal, dimensions: [("reason", "wire.routing_id_mismatch")]).increment()
                if message.fd >= 0 { shutdown(message.fd, Int32(SHUT_RDWR)) }
                peerSockets.removeValue(forKey: message.peer)
                continue
            }
            received.append(message)
        }
        bufferHint = max(4096, buffer.count)
        for m in received {
            batch.append(InboundMessage(peer: m.peer, authenticatedHost: m.userID, payload: buffer[m.range]))
        }
        let count = batch.count
        server.stats.withLock {
            $0.received += count
            $0.inboundBatches += count > 0 ? 1 : 0
            $0.identityMismatch += mismatched
        }
        if count > 0 {
            if case .dropped = server.inboundContinuation.yield(batch) {
                server.stats.withLock { $0.inboundDropped += 1 }
            }
            // The yielded array keeps its buffer; size the next one like this one, not like the limit.
            batch = []
            batch.reserveCapacity(count)
        }
        return count
    }

    private func sendQueued() {
        let items = server.outbox.takeAll()
        guard !items.isEmpty else { return }
        var sent = 0, dropped = 0, bytes = 0
        for item in items {
            bytes += item.bytes
            do {
                if try socket.send(item.peer ?? [], item.payload) { sent += 1 } else { dropped += 1 }
            } catch {
                // EHOSTUNREACH: no such peer connected (ROUTER_MANDATORY). The controller re-sends later.
                dropped += 1
            }
        }
        server.outbox.release(count: items.count, bytes: bytes)
        server.stats.withLock {
            $0.sent += sent
            $0.sendDropped += dropped
        }
    }

    /// Shuts down the sockets of the peers ``RouterServer/disconnect(peer:reason:)`` named.
    private func closeRequested() {
        let requests = server.disconnects.withLock { list -> [(peer: String, reason: String)] in
            defer { list.removeAll() }
            return list
        }
        for (peer, reason) in requests {
            guard let known = peerSockets.removeValue(forKey: peer), closeIfUnchanged(known) else { continue }
            server.stats.withLock { $0.disconnected += 1 }
            server.logger.notice("closed a peer's connection", metadata: ["peer": "\(peer.prefix(64))", "reason": "\(reason)"])
        }
    }

    /// Shuts down a recorded connection's socket, unless the descriptor was closed and reused since:
    /// only the same remote address and port is the same connection.
    @discardableResult
    private func closeIfUnchanged(_ known: (fd: Int32, address: [UInt8])) -> Bool {
        guard !known.address.isEmpty, Self.remoteAddress(known.fd) == known.address else { return false }
        shutdown(known.fd, Int32(SHUT_RDWR))
        return true
    }

    static func remoteAddress(_ fd: Int32) -> [UInt8] {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return [] }
        return withUnsafeBytes(of: &storage) { Array($0.prefix(Int(length))) }
    }

    private func handleZAP() {
        guard let zap, let authenticator = server.authenticator else { return }
        while let request = try? zap.receive() {
            let (reply, parsed, decision) = ZAPProtocol.reply(to: request.frames, authenticator: authenticator)
            _ = try? zap.send(reply)
            switch decision {
            case .allow(let host):
                server.stats.withLock { $0.authAccepted += 1 }
                let joining = JoiningPeer.isJoining(host)
                Counter(label: MetricNames.zapDecisionsTotal, dimensions: [("result", joining ? "joining" : "accepted")]).increment()
                server.logger.debug(joining ? "ZAP admitted a key that is not enrolled, to join only" : "ZAP admitted agent", metadata: [
                    "host.id": "\(host)", "address": "\(parsed?.address ?? "?")",
                ])
            case .deny(let reason):
                server.stats.withLock { $0.authRejected += 1 }
                Counter(label: MetricNames.zapDecisionsTotal, dimensions: [("result", "rejected")]).increment()
                server.logger.warning("ZAP rejected client", metadata: [
                    "address": "\(parsed?.address ?? "?")", "key": "\(parsed?.clientKey?.z85 ?? "-")", "reason": "\(reason)",
                ])
                server.eventContinuation.yield(.authRejected(address: parsed?.address ?? "?", key: parsed?.clientKey?.z85, reason: reason))
            }
        }
    }

    private func handleMonitor() {
        while let event = monitor.next() {
            var emit: TransportEvent?
            switch event.event {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                handshakesSucceeded += 1
                emit = .peerConnected(address: event.address)
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                handshakesFailed += 1
            case ZMQ_EVENT_DISCONNECTED:
                disconnects += 1
                if disconnects - handshakesFailed <= handshakesSucceeded {
                    emit = .peerDisconnected(address: event.address)
                }
            default:
                server.logger.trace("monitor event", metadata: ["event": "\(event.event)", "value": "\(event.value)"])
            }
            // Statistics first, then the event: whoever reacts to the event sees the new count.
            let n = max(0, handshakesSucceeded - max(0, disconnects - handshakesFailed))
            server.stats.withLock { $0.connectedPeers = n }
            if let emit { server.eventContinuation.yield(emit) }
        }
    }
}
