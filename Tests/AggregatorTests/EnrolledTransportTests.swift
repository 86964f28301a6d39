import Foundation
import Logging
@testable import RegwatchAggregator
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The aggregator's real key files, enrollment file and ZAP policy in front of a real ROUTER.
@Suite("Enrolled transport", .serialized)
struct EnrolledTransportTests {
    @Test("generated server keys + an accepted agent key get through; after revoke the same key is refused")
    func enrollAndRevoke() async throws {
        let keysDir = temporaryDirectory("agg-keys")
        let written = try ServerKeys.generateMissing(keysDir: keysDir)
        #expect(written.count == 4)
        #expect(try ServerKeys.generateMissing(keysDir: keysDir).isEmpty)
        let serverKeys = try ServerKeys.load(keysDir: keysDir)
        let store = EnrollmentStore(keysDir: keysDir)
        let agent = try CurveKeyPair.generate()
        _ = try store.accept(host: "node-a1", key: agent.publicKey)

        let server = RouterServer(
            configuration: .init(endpoint: "tcp://127.0.0.1:*", security: .curve(serverKeys: serverKeys.transport)),
            authenticator: EnrollmentAuthenticator(store: store, pending: PendingJoinStore(keysDir: (store.path as NSString).deletingLastPathComponent), logger: quietLogger), logger: quietLogger
        )
        let endpoint = try server.start()
        let serverPublic = try KeyFiles.readCurvePublicKey(ServerKeys.Paths(keysDir: keysDir).serverPublic)

        func connect() throws -> DealerClient {
            let c = DealerClient(configuration: .init(endpoint: endpoint, hostID: "node-a1", security: .curve(serverKey: serverPublic, clientKeys: agent), backoff: .init(initialMs: 50, maxMs: 200)), logger: quietLogger)
            try c.start()
            return c
        }

        let first = try connect()
        first.trySend(Array("hello".utf8))
        var iterator = server.inbound.makeAsyncIterator()
        let got = await iterator.next()
        #expect(got?.authenticatedHost == "node-a1")
        await first.shutdown()

        _ = try store.revoke(host: "node-a1")
        let second = try connect()
        second.trySend(Array("after revoke".utf8))
        let rejected = try await withDeadline(10, "the revoked key's handshake to be refused") {
            for await event in second.events {
                if case .handshakeFailed(.auth(status: 400)) = event { return true }
            }
            return false
        }
        #expect(rejected)
        #expect(server.statistics.authRejected >= 1)
        await second.shutdown()
        await server.shutdown()
    }
}
