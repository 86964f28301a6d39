import Foundation
import RegwatchShared

/// The enrolled agents: which CURVE public key belongs to which host id, in `keys.dir/agents.json`.
///
/// One key per host id and one host id per key. A second key for an enrolled host is refused unless the
/// operator says `--replace` (a reinstalled node), so a leaked token cannot silently replace a host's
/// identity. Revoked records are kept (with the time and why) for the audit trail, and a revoked key is
/// never enrolled again. Changes are atomic and made under a lock, so `keys accept` while `serve` runs is safe.
public struct EnrollmentStore: Sendable {
    public static let fileName = "agents.json"

    public struct Record: Codable, Sendable, Equatable {
        public var host: String
        public var key: String
        public var acceptedAt: Date
        public var revokedAt: Date?
        /// How the key got in: `keys accept`, `token NAME`, `rotate`.
        public var via: String?
        /// Why it was revoked: `revoked`, `replaced`, `rotated`.
        public var revokedReason: String?

        public var isActive: Bool { revokedAt == nil }
    }

    struct FileContent: Codable, Sendable {
        var version = 1
        var agents: [Record] = []
    }

    let file: LockedJSONFile<FileContent>
    public var path: String { file.path }

    public init(keysDir: String) {
        file = LockedJSONFile(path: "\(keysDir)/\(Self.fileName)", empty: FileContent(), kind: "enrollment")
    }

    /// All records, active and revoked, in enrollment order.
    public func records() throws(KeysFileError) -> [Record] {
        try file.read().agents
    }

    /// The keys ZAP admits and the keys it refuses.
    public struct Tables: Sendable, Equatable {
        /// Active key -> host id.
        public var active: [CurvePublicKey: String] = [:]
        /// Keys revoked and not active again.
        public var revoked: Set<CurvePublicKey> = []
    }

    public func tables() throws(KeysFileError) -> Tables {
        var t = Tables()
        for r in try records() {
            guard let key = try? CurvePublicKey(z85: r.key) else { continue }
            if r.isActive { t.active[key] = r.host } else { t.revoked.insert(key) }
        }
        t.revoked.subtract(t.active.keys)
        return t
    }

    /// Active key -> host id table, what the ZAP handler admits.
    public func activeTable() throws(KeysFileError) -> [CurvePublicKey: String] {
        try tables().active
    }

    public enum AcceptOutcome: Sendable, Equatable { case enrolled, alreadyEnrolled, replaced(oldKey: String) }

    /// Binds `key` to `host`. With `replace`, a host enrolled with another key gets this one instead, in
    /// one write (the old key is revoked as `replaced`).
    public func accept(host: String, key: CurvePublicKey, replace: Bool = false, via: String = "keys accept", now: Date = Date()) throws(KeysFileError) -> AcceptOutcome {
        guard HostID.isValid(host) else { throw .invalidHost(host) }
        return try file.modify { (content: inout FileContent) throws(KeysFileError) -> AcceptOutcome in
            if content.agents.contains(where: { !$0.isActive && $0.key == key.z85 }),
               !content.agents.contains(where: { $0.isActive && $0.key == key.z85 }) {
                throw .keyRevoked(key.z85)
            }
            if let other = content.agents.first(where: { $0.isActive && $0.key == key.z85 }) {
                if other.host == host { return .alreadyEnrolled }
                throw .keyBelongsToAnotherHost(key: key.z85, host: other.host)
            }
            var outcome = AcceptOutcome.enrolled
            if let i = content.agents.firstIndex(where: { $0.isActive && $0.host == host }) {
                guard replace else { throw .hostHasAnotherKey(host: host, key: content.agents[i].key) }
                outcome = .replaced(oldKey: content.agents[i].key)
                content.agents[i].revokedAt = now
                content.agents[i].revokedReason = "replaced"
            }
            content.agents.append(Record(host: host, key: key.z85, acceptedAt: now, revokedAt: nil, via: via))
            return outcome
        }
    }

    /// Swaps an enrolled host's key for a new one in one write: the old key is revoked as `rotated`.
    /// `from` must be the host's active key (the one the request came in with).
    public func rotate(host: String, from old: CurvePublicKey, to new: CurvePublicKey, now: Date = Date()) throws(KeysFileError) {
        try file.modify { (content: inout FileContent) throws(KeysFileError) in
            guard let i = content.agents.firstIndex(where: { $0.isActive && $0.host == host }), content.agents[i].key == old.z85 else {
                throw .notEnrolled(host)
            }
            if let other = content.agents.first(where: { $0.key == new.z85 }) {
                if other.isActive { throw .keyBelongsToAnotherHost(key: new.z85, host: other.host) }
                throw .keyRevoked(new.z85)
            }
            content.agents[i].revokedAt = now
            content.agents[i].revokedReason = "rotated"
            content.agents.append(Record(host: host, key: new.z85, acceptedAt: now, revokedAt: nil, via: "rotate"))
        }
    }

    /// Revokes the active key of `host`.
    public func revoke(host: String, now: Date = Date()) throws(KeysFileError) -> Record {
        try file.modify { (content: inout FileContent) throws(KeysFileError) -> Record in
            guard let i = content.agents.firstIndex(where: { $0.isActive && $0.host == host }) else { throw .notEnrolled(host) }
            content.agents[i].revokedAt = now
            content.agents[i].revokedReason = "revoked"
            return content.agents[i]
        }
    }

    /// Identity of the file's current version, to notice changes cheaply.
    public func fileStamp() -> String? { file.stamp() }
}
