import FoundationEssentials
import Glibc
import RegwatchShared

/// That the aggregator accepted this agent's key for its host id, in `stateDir/enrollment.json`.
///
/// With it the agent connects as its host id at once; without it (first start, a new key, another
/// aggregator) it joins first. It names the key and the aggregator's server key it was accepted with,
/// so a new key or a new aggregator leads to a join instead of a connection nobody admits.
public struct EnrollmentRecordFile: Sendable {
    public struct Record: Codable, Sendable, Equatable {
        public var host: String
        public var publicKey: String
        public var serverKey: String
        public var acceptedAt: Date

        public init(host: String, publicKey: String, serverKey: String, acceptedAt: Date) {
            self.host = host
            self.publicKey = publicKey
            self.serverKey = serverKey
            self.acceptedAt = acceptedAt
        }
    }

    public let path: String

    public init(stateDir: String) {
        path = stateDir + "/enrollment.json"
    }

    /// The record, or nil when there is none or it cannot be read (the agent then joins, which is safe).
    public func read() -> Record? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONCoding.decoder().decode(Record.self, from: data)
    }

    /// True when the record says this key is enrolled for this host with this aggregator.
    public func admits(host: String, key: CurvePublicKey, serverKey: CurvePublicKey) -> Bool {
        guard let r = read() else { return false }
        return r.host == host && r.publicKey == key.z85 && r.serverKey == serverKey.z85
    }

    public func write(_ record: Record) throws {
        try KeyDirectory.ensure(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        try AtomicFile.write(Array(try JSONCoding.encoder(pretty: true).encode(record)) + [0x0A], to: path, mode: 0o600)
    }

    public func remove() {
        unlink(path)
    }
}
