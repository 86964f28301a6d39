import Crypto
import Foundation
import Logging
@testable import RegwatchAgent
import RegwatchShared
import Testing

/// The agent's command path end to end on real files (temp dir), with an in-memory reloader: the gate,
/// the agent's own hourly budget, the all-or-nothing apply, the fsync'd generation and the ack.
@Suite("Failover command service")
struct FailoverCommandServiceTests {
    typealias Host = FailoverApplierTests.Host
    nonisolated(unsafe) static let key = Curve25519.Signing.PrivateKey()
    static let signer = CommandSigner(key: key)
    static let now = Date()

    static func config(_ host: Host, extra: String = "") -> AgentConfig {
        try! AgentConfig.parse(ConfigNode.parse("""
        host: {id: node-a1}
        aggregator: {insecure: true}
        stateDir: \(host.dir)/state
        registries:
          - name: docker.io
            mirrors: ["https://mirror-a:5000", {url: "https://mirror-b:5000", trusted: true}]
        runtime:
          docker: {daemonJSON: \(host.daemonJSON), reload: signal}
          containerd: {certsDir: \(host.certsDir)}
          crio: {registriesConf: \(host.registriesConf), reload: signal}
        \(extra)
        """, file: "agent.yaml"))
    }

    static func service(_ host: Host, extra: String = "", reloader: FailoverApplierTests.Reloader = .init()) throws -> FailoverCommandService {
        let config = config(host, extra: extra)
        return try FailoverCommandService(
            config: config, gate: CommandGate(verifier: CommandVerifier(key: key.publicKey), config: config),
            applier: FailoverApplier(config: config, reloader: reloader, dockerMirrors: nil),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), acknowledge: { _ in })
    }

    static func command(_ g: UInt64, _ mirrors: [String], target: String = "node-a1", at issued: Date = now) throws -> SignedFailoverCommand {
        try signer.sign(FailoverDirective(generation: g, issuedAt: issued, expiresAt: issued.addingTimeInterval(600), target: target,
                                          mirrors: ["docker.io": mirrors], reason: "test"))
    }

    @Test("applies, persists the generation before acking, then ignores the same generation and refuses an older one")
    func applyPersistReplay() async throws {
        let host = try Host()
        let service = try Self.service(host)
        let ack = await service.handle(try Self.command(3, ["https://mirror-b:5000"]), now: Self.now)
        #expect(ack.outcome == .applied && ack.appliedGeneration == 3, "\(ack)")
        #expect(ack.reason.contains("docker:") && ack.reason.contains("containerd:") && ack.reason.contains("crio:"), "\(ack.reason)")
        #expect(try AppliedGenerationFile(stateDir: "\(host.dir)/state").read() == 3)
        #expect(service.appliedGeneration == 3)

        // A restarted agent reads the generation back: the same command is ignored, an older one refused.
        let restarted = try Self.service(host)
        #expect(restarted.appliedGeneration == 3)
        let files = host.contents()
        let same = await restarted.handle(try Self.command(3, ["https://mirror-b:5000"]), now: Self.now)
        #expect(same.outcome == .ignored)
        let older = await restarted.handle(try Self.command(2, ["https://mirror-a:5000"]), now: Self.now)
        #expect(older.outcome == .rejected && older.reason.contains("older"), "\(older.reason)")
        #expect(host.contents() == files, "a refused or ignored command wrote something")
    }

    @Test("the agent's hourly budget refuses a change over it, whatever is signed, and nothing is written")
    func budget() async throws {
        let host = try Host()
        let service = try Self.service(host, extra: "failover: {maxChangesPerHour: 2}")
        #expect(await service.handle(try Self.command(1, ["https://mirror-b:5000"]), now: Self.now).outcome == .applied)
        #expect(await service.handle(try Self.command(2, ["https://mirror-a:5000"]), now: Self.now).outcome == .applied)
        let files = host.contents()
        let third = await service.handle(try Self.command(3, ["https://mirror-b:5000"]), now: Self.now)
        #expect(third.outcome == .rejected && third.reason.contains("maxChangesPerHour"), "\(third.reason)")
        #expect(host.contents() == files)
        #expect(service.appliedGeneration == 2)
        // An hour later the budget is free again (the history is on disk, so a restart does not reset it).
        let later = try Self.service(host, extra: "failover: {maxChangesPerHour: 2}")
        #expect(await later.handle(try Self.command(3, ["https://mirror-b:5000"]), now: Self.now).outcome == .rejected)
        let hourLater = Self.now.addingTimeInterval(3601)
        #expect(await later.handle(try Self.command(3, ["https://mirror-b:5000"], at: hourLater), now: hourLater).outcome == .applied)
    }

    @Test("failover.enabled: false refuses every command; a failed reload rolls back and the generation stays")
    func disabledAndRollback() async throws {
        let host = try Host()
        let disabled = try Self.service(host, extra: "failover: {enabled: false}")
        let files = host.contents()
        let refused = await disabled.handle(try Self.command(1, ["https://mirror-b:5000"]), now: Self.now)
        #expect(refused.outcome == .rejected && refused.reason.contains("disabled"))
        #expect(host.contents() == files)

        let failing = try Self.service(host, reloader: .init(failing: [.docker]))
        let ack = await failing.handle(try Self.command(1, ["https://mirror-b:5000"]), now: Self.now)
        #expect(ack.outcome == .rolledBack && ack.appliedGeneration == 0, "\(ack)")
        #expect(host.contents()[host.daemonJSON] == files[host.daemonJSON], "daemon.json not restored")
        #expect(failing.appliedGeneration == 0)
        #expect(try AppliedGenerationFile(stateDir: "\(host.dir)/state").read() == 0)
    }

    @Test("the hostile corpus (1,000+ commands) through the service: every one acked as refused with a reason, not a byte written")
    func corpusWritesNothing() async throws {
        let host = try Host()
        try AppliedGenerationFile(stateDir: "\(host.dir)/state").write(7)
        let config = Self.config(host)
        let reloader = FailoverApplierTests.Reloader()
        let service = try FailoverCommandService(
            config: config, gate: CommandGate(verifier: CommandVerifier(key: CommandGateTests.signingKey.publicKey), config: CommandGateTests.config),
            applier: FailoverApplier(config: config, reloader: reloader, dockerMirrors: nil),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), acknowledge: { _ in })
        func snapshot() throws -> [String: Data] {
            var out: [String: Data] = [:]
            for path in try FileManager.default.subpathsOfDirectory(atPath: host.dir) {
                out[path] = FileManager.default.contents(atPath: "\(host.dir)/\(path)") ?? Data("<dir>".utf8)
            }
            return out
        }
        let before = try snapshot()
        let corpus = try CommandGateTests.corpus()
        #expect(corpus.count >= 1000)
        for (name, command) in corpus {
            let ack = await service.handle(command, now: CommandGateTests.now)
            #expect(ack.outcome == .rejected || ack.outcome == .ignored, "\(name): \(ack.outcome)")
            #expect(!ack.reason.isEmpty && ack.appliedGeneration == 7, "\(name)")
        }
        #expect(try snapshot() == before, "a refused command changed a file")
        #expect(reloader.calls.withLock { $0 }.isEmpty)
        #expect(service.appliedGeneration == 7)
    }

    @Test("an unreadable applied-generation file stops the agent instead of starting from 0")
    func unreadableGeneration() throws {
        let host = try Host()
        try FileManager.default.createDirectory(atPath: "\(host.dir)/state", withIntermediateDirectories: true)
        try "garbage\n".write(toFile: "\(host.dir)/state/applied-generation", atomically: true, encoding: .utf8)
        #expect(throws: AppliedGenerationFile.Failure.self) { try Self.service(host) }
    }
}
