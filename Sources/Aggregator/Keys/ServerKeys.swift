import Crypto
import Foundation
import RegwatchShared

/// The aggregator's own keys in `keys.dir`: the CURVE server key pair (transport) and the Ed25519
/// signing key pair (failover commands), in separate files.
public struct ServerKeys: Sendable {
    public var transport: CurveKeyPair
    public var signer: CommandSigner

    public struct Paths: Sendable, Equatable {
        public var serverSecret, serverPublic, signingSecret, signingPublic: String

        public init(keysDir: String) {
            serverSecret = "\(keysDir)/\(KeyFiles.serverSecret)"
            serverPublic = "\(keysDir)/\(KeyFiles.serverPublic)"
            signingSecret = "\(keysDir)/\(KeyFiles.signingSecret)"
            signingPublic = "\(keysDir)/\(KeyFiles.signingPublic)"
        }
    }

    /// Loads both key pairs; errors name the file.
    public static func load(keysDir: String) throws(KeyFileError) -> ServerKeys {
        let p = Paths(keysDir: keysDir)
        let transport = try KeyFiles.readCurveKeyPair(p.serverSecret)
        let signing = try KeyFiles.readSigningKey(p.signingSecret)
        return ServerKeys(transport: transport, signer: CommandSigner(key: signing))
    }

    /// Writes whichever of the two key pairs is absent; never replaces an existing one.
    /// Returns the files written.
    public static func generateMissing(keysDir: String) throws -> [String] {
        try KeyDirectory.ensure(keysDir)
        let p = Paths(keysDir: keysDir)
        var written: [String] = []
        let fm = FileManager()
        if !fm.fileExists(atPath: p.serverSecret) {
            let pair = try CurveKeyPair.generate()
            try AtomicFile.write(Array(KeyFiles.curveSecretText(pair, role: "aggregator server").utf8), to: p.serverSecret, mode: 0o600, exclusive: true)
            try AtomicFile.write(Array(KeyFiles.curvePublicText(pair.publicKey, role: "aggregator server").utf8), to: p.serverPublic, mode: 0o644)
            written += [p.serverSecret, p.serverPublic]
        }
        if !fm.fileExists(atPath: p.signingSecret) {
            let key = Curve25519.Signing.PrivateKey()
            try AtomicFile.write(Array(KeyFiles.signingSecretText(key).utf8), to: p.signingSecret, mode: 0o600, exclusive: true)
            try AtomicFile.write(Array(KeyFiles.signingPublicText(key.publicKey).utf8), to: p.signingPublic, mode: 0o644)
            written += [p.signingSecret, p.signingPublic]
        }
        return written
    }
}
