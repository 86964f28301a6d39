import Crypto
import FoundationEssentials

/// Reading and writing regwatch key files.
///
/// Files are small text files with `name = "value"` lines and `#` comments, so an operator can read a
/// public key with `cat` and paste it. Secret files are written 0600 and never overwritten.
public enum KeyFiles {
    public static let agentSecret = "agent.key"
    public static let agentPublic = "agent.pub"
    public static let serverSecret = "server.key"
    public static let serverPublic = "server.pub"
    public static let signingSecret = "signing.key"
    public static let signingPublic = "signing.pub"

    // MARK: CURVE

    /// Reads a CURVE key pair from a secret key file (`secret-key = "…"`).
    public static func readCurveKeyPair(_ path: String) throws(KeyFileError) -> CurveKeyPair {
        let value = try field("secret-key", in: path)
        do { return try CurveKeyPair(secretZ85: value) } catch {
            throw KeyFileError(path: path, reason: "secret-key is not a CURVE key (40 Z85 characters)")
        }
    }

    /// Reads a CURVE public key from a public key file (`public-key = "…"`), or the public half of a secret file.
    public static func readCurvePublicKey(_ path: String) throws(KeyFileError) -> CurvePublicKey {
        let value = try field("public-key", in: path)
        do { return try CurvePublicKey(z85: value) } catch {
            throw KeyFileError(path: path, reason: "public-key is not a CURVE key (40 Z85 characters)")
        }
    }

    /// Reads the public key an operator hands over for enrollment, refusing a secret key file: the
    /// secret must never leave the agent, so passing it here is a mistake worth stopping.
    public static func readEnrollmentKey(_ path: String) throws(KeyFileError) -> CurvePublicKey {
        if (try? field("secret-key", in: path)) != nil {
            throw KeyFileError(path: path, reason: "holds a secret key; pass the agent's public file (agent.pub) and keep agent.key on the agent")
        }
        return try readCurvePublicKey(path)
    }

    public static func curveSecretText(_ pair: CurveKeyPair, role: String) -> String {
        """
        # regwatch \(role) CURVE secret key. Keep private (mode 0600).
        public-key = "\(pair.publicKey.z85)"
        secret-key = "\(pair.secretZ85)"

        """
    }

    public static func curvePublicText(_ key: CurvePublicKey, role: String) -> String {
        """
        # regwatch \(role) CURVE public key.
        public-key = "\(key.z85)"

        """
    }

    // MARK: Ed25519

    public static func readSigningKey(_ path: String) throws(KeyFileError) -> Curve25519.Signing.PrivateKey {
        let value = try field("ed25519-secret", in: path)
        guard let raw = Data(base64Encoded: value), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw KeyFileError(path: path, reason: "ed25519-secret is not a base64 Ed25519 private key")
        }
        return key
    }

    public static func readSigningPublicKey(_ path: String) throws(KeyFileError) -> Curve25519.Signing.PublicKey {
        let value = try field("ed25519-public", in: path)
        guard let raw = Data(base64Encoded: value), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw KeyFileError(path: path, reason: "ed25519-public is not a base64 Ed25519 public key")
        }
        return key
    }

    public static func signingSecretText(_ key: Curve25519.Signing.PrivateKey) -> String {
        """
        # regwatch command-signing key (Ed25519). Keep private (mode 0600); it authorises failover commands.
        ed25519-public = "\(key.publicKey.rawRepresentation.base64EncodedString())"
        ed25519-secret = "\(key.rawRepresentation.base64EncodedString())"

        """
    }

    public static func signingPublicText(_ key: Curve25519.Signing.PublicKey) -> String {
        """
        # regwatch command-signing public key (Ed25519). Agents pin it as aggregator.signingKey.
        ed25519-public = "\(key.rawRepresentation.base64EncodedString())"

        """
    }

    // MARK: Parsing

    static func field(_ name: String, in path: String) throws(KeyFileError) -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
            throw KeyFileError(path: path, reason: reason)
        }
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = String(rawLine).trimmed()
            if line.hasPrefix("#") || line.isEmpty { continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq]).trimmed()
            guard key == name else { continue }
            var value = String(line[line.index(after: eq)...]).trimmed()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            return value
        }
        throw KeyFileError(path: path, reason: "no \(name) line (is this the right kind of key file?)")
    }
}

/// A key file that is missing, unreadable or malformed. The message names the file.
public struct KeyFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var code: String { "keys.invalid_file" }
    public var description: String { "\(path): \(reason)" }
}
