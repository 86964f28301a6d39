import CZeroMQ
import Foundation
@testable import RegwatchShared
import Synchronization
import RegwatchTestSupport
import Testing

/// Real libzmq over TCP on 127.0.0.1: every test binds its own ROUTER on an ephemeral port.
@Suite("ZeroMQ transport", .serialized)
struct TransportTests {
    let serverKeys = try! CurveKeyPair.generate()
    let agentKeys = try! CurveKeyPair.generate()

    var authenticator: TableAuthenticator { TableAuthenticator(table: [agentKeys.publicKey: "node-a1"]) }

    @Test("CURVE round trip agent -> aggregator -> agent, sender authenticated by its key")
    func roundTrip() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        let payload = try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1")
        #expect(dealer.trySend(payload))
        let received = try #require(await Harness.first(router.inbound, within: 10) { _ in true })
        #expect(received.peer == "node-a1")
        #expect(received.authenticatedHost == "node-a1")
        #expect(Array(received.payload) == payload)

        let ack = try Harness.envelope(EventsAck(seqs: [1, 2]), host: WireProtocol.aggregatorSender)
        #expect(router.trySend(to: "node-a1", payload: ack))
        let back = try #require(await Harness.first(dealer.inbound, within: 10) { _ in true })
        #expect(Array(back.payload) == ack)
        guard case .eventsAck(let env) = try WireCodec().decode(back.payload) else { Issue.record("not an ack"); return }
        #expect(env.body.seqs == [1, 2])
        #expect(await Harness.first(router.events, within: 5) { if case .peerConnected = $0 { true } else { false } } != nil)
        #expect(router.statistics.connectedPeers == 1)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("an unenrolled key is rejected by ZAP: nothing delivered, the client sees the auth failure and keeps retrying")
    func unenrolledKeyRejected() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let stranger = try CurveKeyPair.generate()
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-x", security: .curve(serverKey: serverKeys.publicKey, clientKeys: stranger))
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-x"), host: "node-x"))
        let failure = await Harness.first(dealer.events, within: 10) { if case .handshakeFailed = $0 { true } else { false } }
        #expect(failure == .handshakeFailed(.auth(status: 400)))
        let rejected = await Harness.first(router.events, within: 5) { if case .authRejected = $0 { true } else { false } }
        guard case .authRejected(_, let key, let reason) = rejected else { Issue.record("no authRejected event"); return }
        #expect(key == stranger.publicKey.z85)
        #expect(reason == "key not enrolled")
        // It retries with backoff: more attempts follow, each rejected, none delivered.
        let delivered = await Harness.collect(router.inbound, for: 1.5)
        #expect(delivered.isEmpty)
        #expect(dealer.statistics.authFailures >= 2)
        #expect(dealer.statistics.reconnects >= 1)
        #expect(router.statistics.authAccepted == 0)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a client pinning the wrong server key gets nothing through")
    func wrongServerKey() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let impostorServer = try CurveKeyPair.generate()
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: impostorServer.publicKey, clientKeys: agentKeys))
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1"))
        let failure = await Harness.first(dealer.events, within: 10) { if case .handshakeFailed = $0 { true } else { false } }
        #expect(failure != nil)
        #expect(failure != .handshakeFailed(.auth(status: 400)))
        #expect(await Harness.collect(router.inbound, for: 1.0).isEmpty)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a NULL-mechanism client is rejected by a CURVE aggregator")
    func nullClientRejected() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .insecure)
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1"))
        let failure = await Harness.first(dealer.events, within: 10) { if case .handshakeFailed = $0 { true } else { false } }
        #expect(failure != nil)
        #expect(await Harness.collect(router.inbound, for: 1.0).isEmpty)
        #expect(router.statistics.connectedPeers == 0)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("with no ZAP handler nobody is admitted, not even a key that would be enrolled")
    func noZAPHandlerAdmitsNobody() async throws {
        var limits = Harness.fastLimits()
        limits.handshakeTimeoutMs = 800
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: nil, limits: limits)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys), limits: limits)
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1"))
        // libzmq stalls the handshake (no ZAP answer); the handshake timeout drops it and the agent retries.
        let events = Mutex<[TransportEvent]>([])
        _ = await Harness.first(dealer.events, within: 3) { e in events.withLock { $0.append(e) }; return false }
        let seen = events.withLock { $0 }
        #expect(!seen.contains { if case .connected = $0 { true } else { false } })
        #expect(seen.contains { if case .reconnectScheduled = $0 { true } else { false } })
        #expect(await Harness.collect(router.inbound, for: 0.5).isEmpty)
        #expect(router.statistics.received == 0)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a message over ZMQ_MAXMSGSIZE disconnects the peer; the agent reconnects and small messages flow again")
    func oversizeDisconnects() async throws {
        var limits = Harness.fastLimits()
        limits.maxMessageSize = 1024
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator, limits: limits)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        #expect(await Harness.first(dealer.events, within: 10) { if case .connected = $0 { true } else { false } } != nil)
        dealer.trySend([UInt8](repeating: 0x41, count: 4096))
        let disconnected = await Harness.first(router.events, within: 10) { if case .peerDisconnected = $0 { true } else { false } }
        #expect(disconnected != nil)
        #expect(await Harness.first(dealer.events, within: 10) { if case .disconnected = $0 { true } else { false } } != nil)
        // After the reconnect the agent is healthy again; the oversize message never arrived.
        #expect(await Harness.first(dealer.events, within: 10) { if case .connected = $0 { true } else { false } } != nil)
        let small = try Harness.envelope(EventsAck(seqs: [7]), host: "node-a1")
        dealer.trySend(small)
        let got = try #require(await Harness.first(router.inbound, within: 10) { _ in true })
        #expect(Array(got.payload) == small)
        #expect(router.statistics.received == 1)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a report claiming another host id than the key's is rejected")
    func senderMismatchRejected() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        let handled = Mutex<[String]>([])
        let dispatcher = MessageDispatcher(handlers: [.report: { m, _ in handled.withLock { $0.append(m.sender) } }], logger: Harness.logger)
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-b2"), host: "node-b2"))
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1", seq: 2))
        let outcomes = try await withDeadline(10, "two messages at the router") {
            var outcomes: [MessageDispatcher.Outcome] = []
            for await message in router.inbound {
                outcomes.append(dispatcher.dispatch(message.payload, authenticatedPeer: message.authenticatedHost))
                if outcomes.count == 2 { break }
            }
            return outcomes
        }
        #expect(outcomes == [.rejected("wire.sender_mismatch"), .handled(.report)])
        #expect(handled.withLock { $0 } == ["node-a1"])
        #expect(dispatcher.statistics.senderMismatch == 1)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a routing id that differs from the key's host id is dropped at the router and its connection closed")
    func routingIDMismatchDropped() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        // Enrolled key of node-a1, but the socket claims to be node-b2 (to receive node-b2's commands).
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-b2", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1"))
        #expect(await Harness.collect(router.inbound, for: 1.5).isEmpty)
        #expect(router.statistics.identityMismatch >= 1)
        var closed = false
        for _ in 0..<50 where !closed {
            closed = dealer.statistics.reconnects >= 1
            if !closed { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(closed, "the impostor's connection stayed open")
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("1,000 random message types reach no handler; each is counted")
    func randomTypesReachNoHandler() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        let calls = Atomic<Int>(0)
        let all = Dictionary(uniqueKeysWithValues: MessageType.allCases.map { t in
            (t, { (_: WireMessage, _: String?) in _ = calls.add(1, ordering: .relaxed) } as MessageDispatcher.Handler)
        })
        let dispatcher = MessageDispatcher(handlers: all, logger: Harness.logger)
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz_.-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        for i in 0..<1000 {
            var type = String((0..<Int.random(in: 1...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            if MessageType(rawValue: type) != nil { type += "_x" }
            let json = #"{"v":1,"type":"\#(type)","host":"node-a1","seq":\#(i),"sentAt":"2025-11-24T16:00:00Z","body":{"probes":[],"events":[]}}"#
            try await dealer.send(Array(json.utf8))
        }
        let n = try await withDeadline(30, "1,000 messages at the router") {
            var n = 0
            for await message in router.inbound {
                #expect(dispatcher.dispatch(message.payload, authenticatedPeer: message.authenticatedHost) == .rejected("wire.unknown_type"))
                n += 1
                if n == 1000 { break }
            }
            return n
        }
        #expect(n == 1000)
        #expect(calls.load(ordering: .relaxed) == 0)
        #expect(dispatcher.statistics.unknownType == 1000)
        #expect(dispatcher.statistics.handled == 0)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("a burst of messages of different sizes arrives complete and in order (batches share one buffer)")
    func burstIntegrity() async throws {
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        let sent = (0..<2000).map { i in [UInt8](repeating: UInt8(i % 251), count: (i * 37) % 3000) + Array("#\(i)".utf8) }
        for payload in sent { try await dealer.send(payload) }
        let got = try await withDeadline(30, "2,000 messages at the router") {
            var got: [[UInt8]] = []
            for await batch in router.inbound.batched {
                got += batch.map { Array($0.payload) }
                if got.count >= sent.count { break }
            }
            return got
        }
        #expect(got == sent)
        #expect(router.statistics.inboundBatches < sent.count)
        await dealer.shutdown()
        await router.shutdown()
    }

    @Test("an agent started before the aggregator connects once it appears (our reconnect loop)")
    func reconnectsWhenAggregatorAppears() async throws {
        // Reserve a port, release it, point the agent at it, then bind the aggregator there.
        let (probe, endpoint) = try Harness.router(keys: serverKeys, authenticator: authenticator)
        await probe.shutdown()
        let dealer = try Harness.dealer(endpoint: endpoint, host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys))
        dealer.trySend(try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1"))
        #expect(await Harness.first(dealer.events, within: 5) { if case .reconnectScheduled = $0 { true } else { false } } != nil)
        let server = RouterServer(configuration: .init(endpoint: endpoint, security: .curve(serverKeys: serverKeys), limits: Harness.fastLimits()), authenticator: authenticator, logger: Harness.logger)
        try server.start()
        let got = await Harness.first(server.inbound, within: 10) { _ in true }
        #expect(got?.authenticatedHost == "node-a1")
        await dealer.shutdown()
        await server.shutdown()
    }

    @Test("an endpoint libzmq rejects is a one-line error naming it")
    func badEndpoint() throws {
        let server = RouterServer(configuration: .init(endpoint: "tcp://not a host:x", security: .curve(serverKeys: serverKeys)), authenticator: authenticator, logger: Harness.logger)
        #expect(throws: TransportError.self) { try server.start() }
        do { try server.start() } catch {
            #expect(error.description.contains("tcp://not a host:x"))
            #expect(!error.description.contains("\n"))
        }
        let client = DealerClient(configuration: .init(endpoint: "bogus://x", hostID: "node-a1", security: .insecure), logger: Harness.logger)
        #expect(throws: TransportError.invalidEndpoint("bogus://x", reason: "Protocol not supported")) { try client.start() }
    }
}

/// An agent with several aggregators: it talks to one, and when that one dies it moves to another and
/// what it sends from then on arrives there.
@Suite("ZeroMQ transport: several aggregators", .serialized)
struct MultiEndpointTransportTests {
    let serverKeys = try! CurveKeyPair.generate()
    let agentKeys = try! CurveKeyPair.generate()

    @Test("three endpoints, one never up: the dealer reaches a live one; when that one dies, the other live one gets its messages")
    func failover() async throws {
        let auth = TableAuthenticator(table: [agentKeys.publicKey: "node-a1"])
        let (a, endpointA) = try Harness.router(keys: serverKeys, authenticator: auth)
        let (b, endpointB) = try Harness.router(keys: serverKeys, authenticator: auth)
        let dead = "tcp://127.0.0.1:\(RegistryHarness.freePort())"
        let dealer = DealerClient(
            configuration: .init(endpoints: [dead, endpointA, endpointB], hostID: "node-a1",
                                 security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys), limits: Harness.fastLimits(),
                                 backoff: ReconnectBackoff(initialMs: 50, maxMs: 200)),
            logger: Harness.logger)
        try dealer.start()
        let payload = try Harness.envelope(Harness.sampleReport(host: "node-a1"), host: "node-a1")
        // Whichever it starts with, a report reaches A or B.
        let routers = [endpointA: a, endpointB: b]
        let connected = await Harness.first(dealer.events, within: 15) { if case .connected = $0 { true } else { false } }
        guard case .connected(let first) = connected, let firstRouter = routers[first] else {
            Issue.record("never connected to a live aggregator: \(String(describing: connected))")
            return
        }
        #expect(dealer.trySend(payload))
        #expect(await Harness.first(firstRouter.inbound, within: 10) { _ in true }?.peer == "node-a1")

        // The aggregator it talks to dies: it moves on (through the dead one, maybe) to the other.
        await firstRouter.shutdown()
        let other = first == endpointA ? b : a
        let otherEndpoint = first == endpointA ? endpointB : endpointA
        let moved = await Harness.first(dealer.events, within: 20) { if case .connected(let e) = $0 { e == otherEndpoint } else { false } }
        #expect(moved != nil, "did not move to \(otherEndpoint)")
        #expect(dealer.trySend(payload))
        #expect(await Harness.first(other.inbound, within: 10) { _ in true }?.peer == "node-a1")
        await dealer.shutdown()
        await other.shutdown()
    }
}
