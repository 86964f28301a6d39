import Crypto
import FoundationEssentials

/// Signs failover directives (aggregator) and verifies them (agent) with Ed25519.
///
/// The signing key is separate from the CURVE transport key: a stolen transport key lets an attacker talk
/// to the aggregator, not rewrite where the fleet pulls images from.
public struct CommandSigner: Sendable {
    // Kept as raw bytes: swift-crypto's key types are not Sendable.
    let raw: Data

    public init(key: Curve25519.Signing.PrivateKey) {
        raw = key.rawRepresentation
    }

    var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    public func sign(_ directive: FailoverDirective) throws -> SignedFailoverCommand {
        let payload = try JSONCoding.encoder().encode(directive)
        let signature = try key.signature(for: payload)
        return SignedFailoverCommand(payload: payload.base64EncodedString(), signature: signature.base64EncodedString())
    }
}

/// Verifies a ``SignedFailoverCommand`` against a pinned public key and decodes its directive.
public struct CommandVerifier: Sendable {
    let raw: Data

    public init(key: Curve25519.Signing.PublicKey) {
        raw = key.rawRepresentation
    }

    var key: Curve25519.Signing.PublicKey { try! Curve25519.Signing.PublicKey(rawRepresentation: raw) }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case badEncoding
        case badSignature
        case badPayload(String)

        public var description: String {
            switch self {
            case .badEncoding: "command payload or signature is not base64"
            case .badSignature: "command signature does not verify with the pinned signing key"
            case .badPayload(let detail): "signed payload is not a failover directive: \(detail)"
            }
        }
    }

    public func verify(_ command: SignedFailoverCommand) throws(Failure) -> FailoverDirective {
        guard let payload = Data(base64Encoded: command.payload), let signature = Data(base64Encoded: command.signature) else {
            throw .badEncoding
        }
        guard key.isValidSignature(signature, for: payload) else { throw .badSignature }
        do {
            return try JSONCoding.decoder().decode(FailoverDirective.self, from: payload)
        } catch {
            throw .badPayload(WireCodec.describe(error))
        }
    }
}
