import Foundation
@testable import RegwatchShared
import Testing

@Suite("Keys and key files")
struct KeyFileTests {
    let dir: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rw-keys-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    @Test("a generated pair's public key is derived back from the secret file")
    func roundTrip() throws {
        let pair = try CurveKeyPair.generate()
        try AtomicFile.write(Array(KeyFiles.curveSecretText(pair, role: "agent").utf8), to: "\(dir)/a.key", mode: 0o600, exclusive: true)
        try AtomicFile.write(Array(KeyFiles.curvePublicText(pair.publicKey, role: "agent").utf8), to: "\(dir)/a.pub")
        #expect(try KeyFiles.readCurveKeyPair("\(dir)/a.key").publicKey == pair.publicKey)
        #expect(try KeyFiles.readCurvePublicKey("\(dir)/a.pub") == pair.publicKey)
        var st = stat()
        stat("\(dir)/a.key", &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(!String(describing: pair).contains(pair.secretForBenchmark))
    }

    @Test("missing, malformed and wrong-kind key files: one line naming the file")
    func badFiles() throws {
        func expectError(_ path: String, contains text: String, _ read: (String) throws -> Void) {
            do {
                try read(path)
                Issue.record("\(path) was accepted")
            } catch {
                let message = "\(error)"
                #expect(message.hasPrefix(path), "\(message)")
                #expect(message.contains(text), "\(message)")
                #expect(!message.contains("\n"))
            }
        }
        expectError("\(dir)/none.pub", contains: "no such file") { _ = try KeyFiles.readCurvePublicKey($0) }
        try "public-key = \"tooshort\"\n".write(toFile: "\(dir)/short.pub", atomically: true, encoding: .utf8)
        expectError("\(dir)/short.pub", contains: "not a CURVE key") { _ = try KeyFiles.readCurvePublicKey($0) }
        try "hello\n".write(toFile: "\(dir)/junk.key", atomically: true, encoding: .utf8)
        expectError("\(dir)/junk.key", contains: "no secret-key line") { _ = try KeyFiles.readCurveKeyPair($0) }
        try "ed25519-public = \"bm90IGEga2V5\"\n".write(toFile: "\(dir)/bad-sign.pub", atomically: true, encoding: .utf8)
        expectError("\(dir)/bad-sign.pub", contains: "not a base64 Ed25519") { _ = try KeyFiles.readSigningPublicKey($0) }
        let pair = try CurveKeyPair.generate()
        try KeyFiles.curveSecretText(pair, role: "agent").write(toFile: "\(dir)/secret.key", atomically: true, encoding: .utf8)
        expectError("\(dir)/secret.key", contains: "holds a secret key") { _ = try KeyFiles.readEnrollmentKey($0) }
    }

    @Test("Z85 validation")
    func z85() throws {
        #expect(throws: TransportError.self) { try CurvePublicKey(z85: String(repeating: "a", count: 39)) }
        #expect(throws: TransportError.self) { try CurvePublicKey(z85: String(repeating: "\"", count: 40)) }
        let pair = try CurveKeyPair.generate()
        #expect(try CurvePublicKey(z85: " \(pair.publicKey.z85)\n") == pair.publicKey)
        #expect(CurvePublicKey(raw: [UInt8](repeating: 1, count: 31)) == nil)
    }

    @Test("exclusive writes never replace a file")
    func exclusive() throws {
        try AtomicFile.write(Array("one".utf8), to: "\(dir)/x", exclusive: true)
        #expect(throws: AtomicFile.WriteError.self) { try AtomicFile.write(Array("two".utf8), to: "\(dir)/x", exclusive: true) }
        #expect(try String(contentsOfFile: "\(dir)/x", encoding: .utf8) == "one")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }.isEmpty)
    }
}

@Suite("Config reading")
struct ConfigNodeTests {
    @Test("durations")
    func durations() {
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("1h") == .seconds(3600))
        #expect(DurationText.parse("2") == .seconds(2))
        #expect(DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(DurationText.parse("-1s") == nil)
        #expect(DurationText.parse("soon") == nil)
        #expect(DurationText.format(.seconds(300)) == "5m")
    }

    @Test("YAML syntax errors carry the line")
    func syntax() {
        #expect(throws: ConfigError.self) { try ConfigNode.parse("a: [1, 2\nb: 3\n", file: "x.yaml") }
        do { _ = try ConfigNode.parse("a: b\n  c: d: e\n", file: "x.yaml") } catch {
            #expect(error.description.hasPrefix("x.yaml:"))
            #expect(error.description.contains("not valid YAML"))
        }
        #expect(throws: ConfigError(file: "x.yaml", line: 1, key: "", message: "top level must be a mapping of keys")) {
            try ConfigNode.parse("- a\n- b\n", file: "x.yaml")
        }
    }
}
