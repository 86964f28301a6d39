import Foundation
import Logging
@testable import RegwatchShared
import ServiceLifecycle
import Testing

@Suite("Transport as services", .serialized)
struct TransportServiceTests {
    @Test("router and dealer run in one ServiceGroup and stop on graceful shutdown")
    func serviceGroup() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let agentKeys = try CurveKeyPair.generate()
        let router = RouterServer(
            configuration: .init(endpoint: "tcp://127.0.0.1:*", security: .curve(serverKeys: serverKeys), limits: Harness.fastLimits()),
            authenticator: TableAuthenticator(table: [agentKeys.publicKey: "node-a1"]), logger: Harness.logger
        )
        let endpoint = try router.start()
        let dealer = DealerClient(
            configuration: .init(endpoint: endpoint, hostID: "node-a1", security: .curve(serverKey: serverKeys.publicKey, clientKeys: agentKeys), limits: Harness.fastLimits()),
            logger: Harness.logger
        )
        let group = ServiceGroup(configuration: .init(services: [.init(service: router), .init(service: dealer)], logger: Harness.logger))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(100))
        dealer.trySend(Array("ping".utf8))
        let got = await Harness.first(router.inbound, within: 10) { _ in true }
        #expect(got.map { Array($0.payload) } == Array("ping".utf8))
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(dealer.statistics.state == .stopped)
        #expect(!dealer.trySend(Array("late".utf8)))
    }
}
