import Foundation
import Logging
import RegwatchShared
import RegwatchTestSupport
import Testing

/// At-least-once pull-event delivery and fail-static behaviour of `regwatch-agent run` as a real
/// process against a real ROUTER over CURVE. The consumer here deduplicates by (host, seq) as the
/// aggregator does, so "exactly once" means: every event the agent saw, no event twice, none lost.
@Suite("agent delivery", .serialized, .ownThread)
struct AgentDeliveryTests {
    /// Keys, config, a log file the agent tails, and a ROUTER that can be stopped and restarted on one port.
    final class Fixture: @unchecked Sendable {
        let h = RegistryHarness("delivery")
        let serverKeys: CurveKeyPair
        let agentKey: CurvePublicKey
        var port = 0
        var router: RouterServer?
        var agent: Process?
        var log: String { "\(h.dir)/kubelet.log" }

        init() throws {
            try "keys: {dir: \(h.dir)/keys}\n".write(toFile: "\(h.dir)/aggregator.yaml", atomically: true, encoding: .utf8)
            _ = try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", "\(h.dir)/aggregator.yaml"])
            _ = try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(h.dir)/agent"])
            serverKeys = try KeyFiles.readCurveKeyPair("\(h.dir)/keys/server.key")
            agentKey = try KeyFiles.readCurvePublicKey("\(h.dir)/agent/agent.pub")
            FileManager.default.createFile(atPath: "\(h.dir)/kubelet.log", contents: nil)
        }

        func startRouter() throws -> RouterServer {
            let r = RouterServer(configuration: .init(endpoint: "tcp://127.0.0.1:\(port == 0 ? "*" : String(port))", security: .curve(serverKeys: serverKeys)),
                                 authenticator: SingleKeyAuthenticator(key: agentKey, hostID: "node-spool"), logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let endpoint = try r.start()
            port = Int(endpoint.split(separator: ":").last!)!
            router = r
            return r
        }

        func startAgent(interval: String = "1s") throws {
            try """
            host: {id: node-spool}
            aggregator: {endpoint: "tcp://127.0.0.1:\(port)", serverKey: \(h.dir)/keys/server.pub, clientKey: \(h.dir)/agent/agent.key, signingKey: \(h.dir)/keys/signing.pub}
            interval: \(interval)
            stateDir: \(h.dir)/state
            events: {files: [\(log)], filePoll: 100ms, resendAfter: 1s, journalUnits: []}
            """.write(toFile: "\(h.dir)/agent.yaml", atomically: true, encoding: .utf8)
            try markEnrolled(stateDir: "\(h.dir)/state", host: "node-spool", keyDir: "\(h.dir)/agent", serverPub: "\(h.dir)/keys/server.pub")
            agent = try h.start(CLI.binary("regwatch-agent"), ["run", "--config", "\(h.dir)/agent.yaml"])
        }

        /// Appends kubelet pull-failure lines, one per image.
        func writeFailures(_ images: [String]) throws {
            let h = try #require(FileHandle(forWritingAtPath: log))
            h.seekToEndOfFile()
            for image in images {
                h.write(Data("I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"\(image)\\\": rpc error: code = Unknown desc = failed to resolve reference \\\"\(image)\\\": unexpected status from HEAD request to https://127.0.0.1:5000/v2/x/manifests/1: 401 Unauthorized\"\n".utf8))
            }
            try h.close()
        }

        func kill9() {
            if let a = agent { kill(a.processIdentifier, SIGKILL); a.waitUntilExit() }
        }

        deinit {
            if let a = agent, !RegistryHarness.hasExited(a) { kill(a.processIdentifier, SIGKILL) }
            h.stopAll()
        }
    }

    /// Collects events by (host, seq) and acks them when `ack` is on.
    actor Consumer {
        var bySeq: [UInt64: PullEvent] = [:]
        var deliveries = 0
        var reports = 0
        var fileSourceActive = false
        func take(_ batch: PullEventBatch) -> [UInt64] {
            deliveries += batch.events.count
            for e in batch.events { bySeq[e.seq] = e }
            return batch.events.map(\.seq)
        }
        func report(_ r: Report) {
            reports += 1
            fileSourceActive = r.eventSources.contains { $0.name.hasPrefix("file:") && $0.state == .active }
        }
    }

    /// Takes whole inbound batches until `done`: stopping inside a batch would drop the rest of it (the
    /// next call starts a new iterator), and under load an unacknowledged event lost that way is never
    /// sent again while the agent runs.
    func consume(_ router: RouterServer, _ consumer: Consumer, ack: Bool, until done: @escaping @Sendable (Consumer) async -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await batch in router.inbound.batched {
                    for message in batch {
                        switch try WireCodec().decode(message.payload) {
                        case .pullEvents(let env):
                            #expect(message.authenticatedHost == "node-spool")
                            let seqs = await consumer.take(env.body)
                            if ack {
                                _ = router.trySend(to: message.peer, payload: try WireCodec().encode(Envelope(host: "aggregator", seq: 0, sentAt: Date(), body: EventsAck(seqs: seqs))))
                            }
                        case .report(let env): await consumer.report(env.body)
                        default: break
                        }
                    }
                    if await done(consumer) { return }
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                throw CancellationError()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    @Test("kill -9 with unacknowledged events in the spool, restart: every event delivered, none lost, none duplicated after dedup")
    func killNine() async throws {
        let f = try Fixture()
        let router = try f.startRouter()
        try f.startAgent()
        let first = (1...40).map { "registry.test:5000/team/app:\($0)" }
        let consumer = Consumer()
        try await consume(router, consumer, ack: false) { await $0.fileSourceActive }
        try f.writeFailures(first)
        // Receive without acknowledging: the events stay in the agent's spool.
        try await consume(router, consumer, ack: false) { await $0.bySeq.count == 40 }
        f.kill9()
        let spool = try String(contentsOfFile: "\(f.h.dir)/state/events.spool", encoding: .utf8)
        #expect(spool.split(separator: "\n").filter { $0.hasPrefix("+") }.count == 40)

        try f.startAgent()
        let after = Consumer()
        try await consume(router, after, ack: true) { await $0.fileSourceActive }
        let second = (41...60).map { "registry.test:5000/team/app:\($0)" }
        try f.writeFailures(second)
        try await consume(router, after, ack: true) { await $0.bySeq.count == 60 }
        let events = await after.bySeq
        #expect(Set(events.values.map(\.image)) == Set(first + second))
        #expect(events.keys.sorted() == Array(1...60))
        #expect(events.values.allSatisfy { $0.errorClass == .authFailed && $0.result == .failure && $0.source == "file:\(f.log)" })

        // Acknowledged: the spool empties and nothing is sent again.
        var empty = false
        for _ in 0..<50 where !empty {
            let text = (try? String(contentsOfFile: "\(f.h.dir)/state/events.spool", encoding: .utf8)) ?? ""
            let adds = Set(text.split(separator: "\n").filter { $0.hasPrefix("+") }.compactMap { line in
                (try? JSONDecoder().decode([String: AnyCodable].self, from: Data(line.dropFirst().utf8)))?["seq"]?.int
            })
            let acks = Set(text.split(separator: "\n").filter { $0.hasPrefix("-") }.compactMap { Int($0.dropFirst()) })
            empty = adds.subtracting(acks).isEmpty
            if !empty { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(empty, "spool still holds acknowledged events")
        f.kill9()
        await router.shutdown()
    }

    @Test("aggregator down for several intervals, then up: reports resume within an interval and spooled events arrive")
    func aggregatorOutage() async throws {
        let f = try Fixture()
        let first = try f.startRouter()
        try f.startAgent()
        try await consume(first, Consumer(), ack: true) { await $0.fileSourceActive }
        await first.shutdown()  // the aggregator goes away; the port stays free for its return
        let images = (1...25).map { "registry.test:5000/outage/app:\($0)" }
        try f.writeFailures(images)
        try await Task.sleep(for: .seconds(4))  // four intervals with the aggregator down
        #expect(f.agent?.isRunning == true, "the agent must keep running without its aggregator")

        let router = try f.startRouter()
        let consumer = Consumer()
        let back = ContinuousClock.now
        try await consume(router, consumer, ack: true) { c in
            let (events, reports) = await (c.bySeq.count, c.reports)
            return events == 25 && reports >= 1
        }
        let elapsed = ContinuousClock.now - back
        #expect(Set(await consumer.bySeq.values.map(\.image)) == Set(images))
        // Reconnect backoff after 4 s of failures is at most 8 s (0.5 s doubling, equal jitter), plus one interval:
        // a generous bound (the whole suite loads both cores) that still fails if catching up waited for the 30 s
        // backoff ceiling or a restart.
        #expect(elapsed < .seconds(28), "took \(elapsed) to catch up")
        f.kill9()
        await router.shutdown()
    }
}

/// Minimal JSON value reader for peeking into the spool file.
struct AnyCodable: Decodable {
    let int: Int?
    init(from decoder: any Decoder) throws {
        int = try? decoder.singleValueContainer().decode(Int.self)
    }
}
