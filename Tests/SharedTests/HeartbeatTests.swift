import Foundation
@testable import RegwatchShared
import RegwatchTestSupport
import Testing

/// A dead peer (a frozen process, not a closed socket) is noticed by ZMTP heartbeats. The agent talks to
/// the aggregator through a real `socat` relay; `kill -STOP` on the relay silences the link without
/// closing it, exactly what a hung host or a black-holing firewall does.
@Suite("Heartbeats", .serialized)
struct HeartbeatTests {
    @Test("defaults notice a dead peer within ~20 s")
    func defaults() {
        let l = TransportLimits()
        #expect(l.heartbeatIntervalMs + l.heartbeatTimeoutMs <= 20_000)
        #expect(l.heartbeatTTLMs <= 20_000)
    }

    @Test("a silent peer is dropped on both sides after the heartbeat timeout, and the agent schedules a reconnect")
    func deadPeerDetected() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let agentKeys = try CurveKeyPair.generate()
        var limits = Harness.fastLimits()
        limits.heartbeatIntervalMs = 200
        limits.heartbeatTimeoutMs = 1000
        limits.heartbeatTTLMs = 1000
        let (router, endpoint) = try Harness.router(keys: serverKeys, authenticator: TableAuthenticator(table: [agentKeys.publicKey: "node-a1"]), limits: limits)
        let routerPort = endpoint.split(separator: ":").last!
        let relayPort = RegistryHarness.freePort()
        let socat = Process()
        socat.executableURL = URL(fileURLWithPath: "/usr/bin/socat")
        socat.arguments = ["TCP-LISTEN:\(relayPort),bind=127.0.0.1,reuseaddr", "TCP:127.0.0.1:\(routerPort)"]
        try socat.run()
        defer {
            kill(socat.processIdentifier, SIGCONT)
            socat.terminate()
        }
        try await Task.sleep(for: .milliseconds(300))
        let dealer = try Harness.dealer(endpoint: "tcp://127.0.0.1:\(relayPort)", host: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys), limits: limits)
        #expect(await Harness.first(dealer.events, within: 10) { if case .connected = $0 { true } else { false } } != nil)
        #expect(await Harness.first(router.events, within: 5) { if case .peerConnected = $0 { true } else { false } } != nil)
        #expect(router.statistics.connectedPeers == 1)

        let frozenAt = ContinuousClock.now
        kill(socat.processIdentifier, SIGSTOP)
        // Without heartbeats the link would stay up: socat's kernel socket still accepts and acknowledges.
        let routerSaw = await Harness.first(router.events, within: 20) { if case .peerDisconnected = $0 { true } else { false } }
        let routerDelay = ContinuousClock.now - frozenAt
        #expect(routerSaw != nil)
        let dealerSaw = await Harness.first(dealer.events, within: 10) { if case .disconnected = $0 { true } else { false } }
        #expect(dealerSaw != nil)
        #expect(router.statistics.connectedPeers == 0)
        // Noticed by the timeout, not by a closed socket. The timeout runs from the last heartbeat, which
        // can be up to one interval before the freeze: never earlier than timeout - interval.
        #expect(routerDelay >= .milliseconds(Int64(limits.heartbeatTimeoutMs - limits.heartbeatIntervalMs)))
        #expect(dealer.statistics.state != .connected)
        #expect(await Harness.first(dealer.events, within: 5) { if case .reconnectScheduled = $0 { true } else { false } } != nil)
        await dealer.shutdown()
        await router.shutdown()
    }
}
