import CZeroMQ

/// A CURVE public key in Z85 (40 characters for 32 bytes), the form libzmq and key files use.
public struct CurvePublicKey: Hashable, Sendable, CustomStringConvertible {
    public let z85: String

    /// Validates that `z85` decodes to exactly 32 bytes.
    public init(z85: String) throws(TransportError) {
        let trimmed = z85.trimmed()
        guard CurveKeyCodec.decode(trimmed) != nil else {
            throw .invalidKey(what: "CURVE public key", reason: "expected 40 Z85 characters, got \"\(trimmed.prefix(48))\"")
        }
        self.z85 = trimmed
    }

    /// From the 32 raw bytes a ZAP request carries.
    public init?(raw: [UInt8]) {
        guard raw.count == 32, let z = CurveKeyCodec.encode(raw) else { return nil }
        z85 = z
    }

    public var description: String { z85 }
}

/// A CURVE secret key with its public half. The secret never appears in logs or descriptions.
public struct CurveKeyPair: Sendable, CustomStringConvertible {
    public let publicKey: CurvePublicKey
    package let secretZ85: String

    /// Derives the public key from a Z85 secret key.
    public init(secretZ85: String) throws(TransportError) {
        let trimmed = secretZ85.trimmed()
        guard CurveKeyCodec.decode(trimmed) != nil else {
            throw .invalidKey(what: "CURVE secret key", reason: "expected 40 Z85 characters")
        }
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, trimmed) == 0 else { throw .last("zmq_curve_public") }
        self.secretZ85 = trimmed
        self.publicKey = try CurvePublicKey(z85: String(zeroTerminated: pub))
    }

    /// A fresh random key pair (libsodium via libzmq).
    public static func generate() throws(TransportError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw .last("zmq_curve_keypair") }
        return try CurveKeyPair(secretZ85: String(zeroTerminated: sec))
    }

    public var description: String { "CurveKeyPair(public: \(publicKey))" }

    /// The Z85 secret, for a benchmark's raw libzmq reference loop only.
    public var secretForBenchmark: String { secretZ85 }
}

enum CurveKeyCodec {
    static func decode(_ z85: String) -> [UInt8]? {
        guard z85.utf8.count == 40 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, z85) != nil else { return nil }
        return out
    }

    static func encode(_ raw: [UInt8]) -> String? {
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, raw, raw.count) != nil else { return nil }
        return String(zeroTerminated: out)
    }
}

extension String {
    /// From a NUL-terminated C buffer.
    init(zeroTerminated buffer: [CChar]) {
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        self.init(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
