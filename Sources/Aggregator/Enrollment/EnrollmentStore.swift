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

    let file: any EnrollmentDocument<FileContent>
    public var path: String { file.path }

    public init(keysDir: String) {
        self.init(.files(keysDir: keysDir))
    }

    public init(_ backend: EnrollmentBackend) {
        file = backend.document("agents", fileName: Self.fileName, empty: FileContent(), kind: "enrollment")
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
        return try accept([Admission(host: host, key: key, via: via)], replace: replace, now: now)[0].get()
    }

    /// One key to bind to one host id, in ``accept(_:replace:now:)``.
    public struct Admission: Sendable, Equatable {
        public var host: String
        public var key: CurvePublicKey
        public var via: String

        public init(host: String, key: CurvePublicKey, via: String) {
            self.host = host
            self.key = key
            self.via = via
        }
    }

    /// Binds each key to its host, in order, in one read and one write of the file: a fleet enrolling at
    /// once costs a write per batch, not per agent. Each admission has its own outcome, as if made alone
    /// after the ones before it; the file is written unless every one failed.
    public func accept(_ admissions: [Admission], replace: Bool = false, now: Date = Date()) throws(KeysFileError) -> [Result<AcceptOutcome, KeysFileError>] {
        try file.modify { (content: inout FileContent) throws(KeysFileError) -> [Result<AcceptOutcome, KeysFileError>] in
            var activeByKey: [String: Int] = [:]
            var activeByHost: [String: Int] = [:]
            var revoked: Set<String> = []
            for (i, r) in content.agents.enumerated() {
                if r.isActive {
                    activeByKey[r.key] = i
                    activeByHost[r.host] = i
                } else {
                    revoked.insert(r.key)
                }
            }
            var outcomes: [Result<AcceptOutcome, KeysFileError>] = []
            outcomes.reserveCapacity(admissions.count)
            for a in admissions {
                let key = a.key.z85
                guard HostID.isValid(a.host) else { outcomes.append(.failure(.invalidHost(a.host))); continue }
                if let i = activeByKey[key] {
                    let other = content.agents[i].host
                    outcomes.append(other == a.host ? .success(.alreadyEnrolled) : .failure(.keyBelongsToAnotherHost(key: key, host: other)))
                    continue
                }
                guard !revoked.contains(key) else { outcomes.append(.failure(.keyRevoked(key))); continue }
                var outcome = AcceptOutcome.enrolled
                if let i = activeByHost[a.host] {
                    guard replace else { outcomes.append(.failure(.hostHasAnotherKey(host: a.host, key: content.agents[i].key))); continue }
                    outcome = .replaced(oldKey: content.agents[i].key)
                    content.agents[i].revokedAt = now
                    content.agents[i].revokedReason = "replaced"
                    activeByKey[content.agents[i].key] = nil
                    revoked.insert(content.agents[i].key)
                }
                content.agents.append(Record(host: a.host, key: key, acceptedAt: now, revokedAt: nil, via: a.via))
                activeByKey[key] = content.agents.count - 1
                activeByHost[a.host] = content.agents.count - 1
                outcomes.append(.success(outcome))
            }
            return outcomes
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
    public func stamp() -> String? { file.stamp() }
}
