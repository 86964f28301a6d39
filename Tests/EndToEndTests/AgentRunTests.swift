import Foundation
import Logging
import RegwatchShared
import RegwatchTestSupport
import Testing

/// `regwatch-agent run` as a real process: reports every interval over CURVE to a real ROUTER, and a
/// clean exit on SIGTERM.
@Suite("agent run", .serialized, .ownThread)
struct AgentRunTests {
    @Test("reports arrive every interval, authenticated, with increasing sequence numbers; SIGTERM stops it cleanly")
    func reports() async throws {
        let h = RegistryHarness("run")
        let registry = try h.startRegistry(name: "r")
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", try aggregatorConfig(h)]).status == 0)
        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(h.dir)/agent"]).status == 0)
        let serverKeys = try KeyFiles.readCurveKeyPair("\(h.dir)/keys/server.key")
        let agentKey = try KeyFiles.readCurvePublicKey("\(h.dir)/agent/agent.pub")
        let router = RouterServer(configuration: .init(endpoint: "tcp://127.0.0.1:*", security: .curve(serverKeys: serverKeys)),
                                  authenticator: SingleKeyAuthenticator(key: agentKey, hostID: "node-run"), logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let endpoint = try router.start()
        try """
        host: {id: node-run, labels: {zone: z1}}
        aggregator: {endpoint: "\(endpoint)", serverKey: \(h.dir)/keys/server.pub, clientKey: \(h.dir)/agent/agent.key, signingKey: \(h.dir)/keys/signing.pub}
        interval: 1s
        stateDir: \(h.dir)/state
        registries:
          - {name: docker.io, upstream: "http://127.0.0.1:\(registry)", rateLimit: false}
        """.write(toFile: "\(h.dir)/agent.yaml", atomically: true, encoding: .utf8)
        try markEnrolled(stateDir: "\(h.dir)/state", host: "node-run", keyDir: "\(h.dir)/agent", serverPub: "\(h.dir)/keys/server.pub")
        let agent = try h.start(CLI.binary("regwatch-agent"), ["run", "--config", "\(h.dir)/agent.yaml"])

        let seqs = try await withDeadline(30, "two reports from the agent") {
            var seqs: [UInt64] = []
            for await message in router.inbound {
                guard case .report(let env) = try WireCodec().decode(message.payload) else { continue }
                #expect(message.authenticatedHost == "node-run")
                #expect(env.body.host.labels["zone"] == "z1")
                #expect(env.body.probes.first?.errorClass == .ok)
                seqs.append(env.seq)
                if seqs.count == 2 { break }
            }
            return seqs
        }
        #expect(seqs == [1, 2])
        // The liveness probe sees the cycles.
        let health = try CLI.run("regwatch-agent", ["health", "--config", "\(h.dir)/agent.yaml"])
        #expect(health.status == 0, "\(health.stdout)\(health.stderr)")
        #expect(health.stdout.hasPrefix("healthy: last check cycle finished "), "\(health.stdout)")
        kill(agent.processIdentifier, SIGTERM)
        var exited = false
        for _ in 0..<100 where !exited {
            exited = RegistryHarness.hasExited(agent)
            if !exited { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(exited, "agent did not stop on SIGTERM")
        await router.shutdown()
    }

    func aggregatorConfig(_ h: RegistryHarness) throws -> String {
        let path = "\(h.dir)/aggregator.yaml"
        try "keys: {dir: \(h.dir)/keys}\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
