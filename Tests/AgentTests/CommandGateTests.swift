import Crypto
import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

/// The agent's gate for failover commands, against a corpus of hostile and broken commands: every one
/// must be refused (or, for an equal generation, ignored) with a reason, and only well-formed, signed,
/// newer, unexpired commands within the local allowlist pass.
@Suite("Failover command gate")
struct CommandGateTests {
    nonisolated(unsafe) static let signingKey = Curve25519.Signing.PrivateKey()
    static let signer = CommandSigner(key: signingKey)
    static let now = Date(timeIntervalSince1970: 1_795_914_000)

    static let config: AgentConfig = {
        let yaml = """
        host: {id: node-a1}
        aggregator: {insecure: true}
        registries:
          - name: docker.io
            mirrors: ["https://mirror-a:5000", "https://mirror-b:5000", {url: "http://mirror-plain:5000", insecure: true}]
          - name: registry.example:5000
            mirrors: ["https://cache.example:443"]
        """
        return try! AgentConfig.parse(ConfigNode.parse(yaml, file: "agent.yaml"))
    }()

    let gate = CommandGate(verifier: CommandVerifier(key: signingKey.publicKey), config: config)

    static func directive(
        generation: UInt64 = 8, target: String = "node-a1", mirrors: [String: [String]] = ["docker.io": ["https://mirror-b:5000", "https://mirror-a:5000"]],
        issued: TimeInterval = -10, expires: TimeInterval = 600
    ) -> FailoverDirective {
        FailoverDirective(generation: generation, issuedAt: now.addingTimeInterval(issued), expiresAt: now.addingTimeInterval(expires),
                          target: target, mirrors: mirrors, reason: "endpoint_down https://mirror-a:5000")
    }

    func check(_ command: SignedFailoverCommand, applied: UInt64 = 7, epoch: UInt64 = 0) -> CommandGate.Decision {
        gate.evaluate(command, applied: CommandVersion(epoch: epoch, generation: applied), now: Self.now)
    }

    @Test("a signed, newer, unexpired command within the allowlist is accepted")
    func accepts() throws {
        let d = Self.directive()
        #expect(check(try Self.signer.sign(d)) == .accept(d))
        let plain = Self.directive(mirrors: ["docker.io": ["http://mirror-plain:5000/"], "registry.example:5000": []])
        #expect(check(try Self.signer.sign(plain)) == .accept(plain))
    }

    @Test("the same generation again is ignored, not re-applied")
    func equalGeneration() throws {
        guard case .ignore(8, _) = check(try Self.signer.sign(Self.directive()), applied: 8) else { Issue.record("not ignored"); return }
    }

    /// A new aggregator term (epoch) may re-send or move on; a command of an older term is refused
    /// whatever its generation, so a deposed leader's late directive cannot undo its successor's.
    @Test("leadership terms: an older epoch is refused, a newer one confirms the applied generation or moves on")
    func epochs() throws {
        func directive(_ g: UInt64, epoch: UInt64) -> FailoverDirective {
            var d = Self.directive(generation: g)
            d.epoch = epoch
            return d
        }
        // Applied: epoch 3, generation 7.
        let newer = directive(8, epoch: 3)
        #expect(check(try Self.signer.sign(newer), applied: 7, epoch: 3) == .accept(newer))
        let nextTerm = directive(8, epoch: 4)
        #expect(check(try Self.signer.sign(nextTerm), applied: 7, epoch: 3) == .accept(nextTerm))
        #expect(check(try Self.signer.sign(directive(7, epoch: 4)), applied: 7, epoch: 3) == .confirm(CommandVersion(epoch: 4, generation: 7)))
        guard case .ignore(7, _) = check(try Self.signer.sign(directive(7, epoch: 3)), applied: 7, epoch: 3) else { Issue.record("not ignored"); return }
        for (g, e) in [(UInt64(9), UInt64(2)), (7, 2), (6, 4), (100, 0)] {
            guard case .reject(let rg, let reason) = check(try Self.signer.sign(directive(g, epoch: e)), applied: 7, epoch: 3) else {
                Issue.record("epoch \(e) generation \(g) against epoch 3 generation 7 was not refused")
                continue
            }
            #expect(rg == g && !reason.isEmpty)
            if e < 3 { #expect(reason.contains("deposed"), "\(reason)") }
        }
        // The file keeps both, and reads an older agent's generation-only file as epoch 0.
        let dir = NSTemporaryDirectory() + "rw-epoch-\(UUID().uuidString)"
        let file = AppliedGenerationFile(stateDir: dir)
        try file.write(12, epoch: 5)
        #expect(try file.readVersion() == CommandVersion(epoch: 5, generation: 12) && file.read() == 12)
        try "9\n".write(toFile: file.path, atomically: true, encoding: .utf8)
        #expect(try file.readVersion() == CommandVersion(epoch: 0, generation: 9))
        try "9 x\n".write(toFile: file.path, atomically: true, encoding: .utf8)
        #expect(throws: AppliedGenerationFile.Failure.self) { try file.readVersion() }
    }

    /// Builds the hostile corpus: more than 1,000 commands, each with the reason it must fail.
    static func corpus() throws -> [(String, SignedFailoverCommand)] {
        var out: [(String, SignedFailoverCommand)] = []
        let good = try signer.sign(directive())
        let otherKey = CommandSigner(key: Curve25519.Signing.PrivateKey())
        var rng = SystemRandomNumberGenerator()
        func b64(_ n: Int) -> String { Data((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }).base64EncodedString() }

        for i in 0..<150 {  // forged: random signatures, bit flips, another key, payload swapped under a good signature
            out.append(("random signature \(i)", SignedFailoverCommand(payload: good.payload, signature: b64(64))))
            var sig = Data(base64Encoded: good.signature)!
            sig[i % 64] ^= UInt8(1 << (i % 8))
            out.append(("flipped signature bit \(i)", SignedFailoverCommand(payload: good.payload, signature: sig.base64EncodedString())))
            out.append(("wrong key \(i)", try otherKey.sign(directive(generation: UInt64(8 + i)))))
            let tampered = try JSONCoding.encoder().encode(directive(generation: UInt64(9 + i), mirrors: ["docker.io": ["https://mirror-b:5000"]]))
            out.append(("payload swapped \(i)", SignedFailoverCommand(payload: tampered.base64EncodedString(), signature: good.signature)))
        }
        for g in 0..<100 { out.append(("replayed or older generation \(g % 7)", try signer.sign(directive(generation: UInt64(g % 7))))) }
        for i in 0..<60 {
            out.append(("expired \(i)", try signer.sign(directive(issued: -7200, expires: -Double(i + 1)))))
            out.append(("issued in the future \(i)", try signer.sign(directive(issued: 3600 + Double(i), expires: 7200))))
            out.append(("other host \(i)", try signer.sign(directive(target: "node-\(i)"))))
        }
        let outside = ["https://evil.example:5000", "https://mirror-a:5001", "https://mirror-a.evil:5000", "https://mirror-c:5000", "https://127.0.0.1:5000"]
        for (i, url) in (0..<100).map({ ($0, outside[$0 % outside.count]) }) {
            out.append(("outside allowlist \(i)", try signer.sign(directive(mirrors: ["docker.io": ["https://mirror-a:5000", url]]))))
        }
        for i in 0..<50 {
            out.append(("http where not allowed \(i)", try signer.sign(directive(mirrors: ["docker.io": ["http://mirror-a:5000"]]))))
            out.append(("skip_verify \(i)", try signer.sign(directive(mirrors: ["docker.io": ["https://mirror-a:5000?skip_verify=true"]]))))
            out.append(("credentials in URL \(i)", try signer.sign(directive(mirrors: ["docker.io": ["https://user:pw@mirror-a:5000"]]))))
        }
        let escapes = ["../etc", "docker.io/../../etc", "..", "a/b", "/etc/containerd", "docker.io\\..", ".hidden", "-rf", "", "reg istry", "docker.io/x"]
        for i in 0..<110 {
            out.append(("registry name escapes certsDir \(i)", try signer.sign(directive(mirrors: [escapes[i % escapes.count]: ["https://mirror-a:5000"]]))))
        }
        for i in 0..<40 {
            out.append(("unconfigured registry \(i)", try signer.sign(directive(mirrors: ["quay.io": ["https://mirror-a:5000"]]))))
            out.append(("duplicate mirror \(i)", try signer.sign(directive(mirrors: ["docker.io": ["https://mirror-a:5000", "https://mirror-a:5000/"]]))))
        }
        for i in 0..<30 {
            out.append(("oversize payload \(i)", SignedFailoverCommand(payload: String(repeating: "A", count: CommandGate.maxPayloadBytes + 1 + i), signature: good.signature)))
            let many = (0..<(CommandGate.maxMirrors + 1 + i)).map { "https://mirror-\($0):5000" }
            out.append(("too many mirrors \(i)", try signer.sign(directive(mirrors: ["docker.io": many]))))
        }
        for i in 0..<60 {  // malformed: not base64, not JSON (but validly signed), JSON of the wrong shape
            out.append(("payload not base64 \(i)", SignedFailoverCommand(payload: "%%%\(i)", signature: good.signature)))
            let junk = Data("not json \(i) {".utf8)
            out.append(("signed junk \(i)", SignedFailoverCommand(payload: junk.base64EncodedString(), signature: try signingKey.signature(for: junk).base64EncodedString())))
            let wrongShape = Data("{\"generation\":\"nine\",\"target\":\"node-a1\"}".utf8)
            out.append(("signed wrong shape \(i)", SignedFailoverCommand(payload: wrongShape.base64EncodedString(), signature: try signingKey.signature(for: wrongShape).base64EncodedString())))
        }
        return out
    }

    @Test("a corpus of more than 1,000 hostile or broken commands: every one refused, each with a reason")
    func corpusRejected() throws {
        let corpus = try Self.corpus()
        #expect(corpus.count >= 1000)
        var reasons: [String: Int] = [:]
        for (name, command) in corpus {
            switch check(command) {
            case .accept(let d):
                Issue.record("accepted: \(name) (generation \(d.generation))")
            case .confirm(let v):
                Issue.record("confirmed: \(name) (\(v))")
            case .ignore(_, let reason), .reject(_, let reason):
                #expect(!reason.isEmpty, "\(name): no reason")
                reasons[String(reason.prefix(24)), default: 0] += 1
            }
        }
        // Distinct checks fired, not one catch-all.
        #expect(reasons.count >= 10, "\(reasons)")
    }

    @Test("the applied generation survives a restart in stateDir and an unreadable file is an error, not 0")
    func generationFile() throws {
        let dir = NSTemporaryDirectory() + "rw-gen-\(UUID().uuidString)"
        let file = AppliedGenerationFile(stateDir: dir)
        #expect(try file.read() == 0)
        try file.write(41)
        #expect(try AppliedGenerationFile(stateDir: dir).read() == 41)
        try "forty-two".write(toFile: file.path, atomically: true, encoding: .utf8)
        #expect(throws: AppliedGenerationFile.Failure.self) { try file.read() }
    }
}
