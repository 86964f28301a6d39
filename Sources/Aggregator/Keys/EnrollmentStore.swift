import Foundation
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// The enrolled agents: which CURVE public key belongs to which host id, in `keys.dir/agents.json`.
///
/// One key per host id and one host id per key. A second key for an enrolled host is refused until the
/// old one is revoked, so a leaked enrollment command cannot silently replace a host's identity.
/// Revoked records are kept (with the time) for the audit trail. Changes are made under an exclusive
/// `flock` and written atomically, so `keys accept` while `serve` runs is safe.
public struct EnrollmentStore: Sendable {
    public static let fileName = "agents.json"

    public struct Record: Codable, Sendable, Equatable {
        public var host: String
        public var key: String
        public var acceptedAt: Date
        public var revokedAt: Date?

        public var isActive: Bool { revokedAt == nil }
    }

    struct FileContent: Codable {
        var version = 1
        var agents: [Record] = []
    }

    public let path: String

    public init(keysDir: String) {
        path = "\(keysDir)/\(Self.fileName)"
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case invalidHost(String)
        case hostHasAnotherKey(host: String, key: String)
        case keyBelongsToAnotherHost(key: String, host: String)
        case notEnrolled(String)
        case unreadable(path: String, reason: String)

        public var description: String {
            switch self {
            case .invalidHost(let h): "\"\(h.prefix(64))\" is not a valid host id (letters, digits, . _ -; at most \(HostID.maxLength))"
            case .hostHasAnotherKey(let h, let k): "host \(h) is already enrolled with key \(k); revoke it first: regwatch-aggregator keys revoke --host \(h)"
            case .keyBelongsToAnotherHost(let k, let h): "key \(k) is already enrolled for host \(h); one key per host"
            case .notEnrolled(let h): "host \(h) has no active enrollment"
            case .unreadable(let p, let r): "\(p): \(r)"
            }
        }
    }

    /// All records, active and revoked, in enrollment order.
    public func records() throws(Failure) -> [Record] {
        try read().agents
    }

    /// Active key -> host id table, what the ZAP handler admits.
    public func activeTable() throws(Failure) -> [CurvePublicKey: String] {
        var table: [CurvePublicKey: String] = [:]
        for r in try records() where r.isActive {
            if let key = try? CurvePublicKey(z85: r.key) { table[key] = r.host }
        }
        return table
    }

    public enum AcceptOutcome: Sendable, Equatable { case enrolled, alreadyEnrolled }

    /// Binds `key` to `host`.
    public func accept(host: String, key: CurvePublicKey, now: Date = Date()) throws(Failure) -> AcceptOutcome {
        guard HostID.isValid(host) else { throw .invalidHost(host) }
        return try modify { (content: inout FileContent) throws(Failure) -> AcceptOutcome in
            if let existing = content.agents.first(where: { $0.isActive && $0.host == host }) {
                if existing.key == key.z85 { return .alreadyEnrolled }
                throw .hostHasAnotherKey(host: host, key: existing.key)
            }
            if let other = content.agents.first(where: { $0.isActive && $0.key == key.z85 }) {
                throw .keyBelongsToAnotherHost(key: key.z85, host: other.host)
            }
            content.agents.append(Record(host: host, key: key.z85, acceptedAt: now, revokedAt: nil))
            return .enrolled
        }
    }

    /// Revokes the active key of `host`.
    public func revoke(host: String, now: Date = Date()) throws(Failure) -> Record {
        try modify { (content: inout FileContent) throws(Failure) -> Record in
            guard let i = content.agents.firstIndex(where: { $0.isActive && $0.host == host }) else { throw .notEnrolled(host) }
            content.agents[i].revokedAt = now
            return content.agents[i]
        }
    }

    /// Identity of the file's current version (inode, size, mtime), to notice changes cheaply.
    public func fileStamp() -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "\(st.st_ino)-\(st.st_size)-\(st.st_mtim.tv_sec)-\(st.st_mtim.tv_nsec)"
    }

    // MARK: File access

    func read() throws(Failure) -> FileContent {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw .unreadable(path: path, reason: "cannot be read") }
            return FileContent()
        }
        do {
            return try JSONCoding.decoder().decode(FileContent.self, from: data)
        } catch {
            throw .unreadable(path: path, reason: "not a regwatch enrollment file: \(error)")
        }
    }

    private func modify<T>(_ change: (inout FileContent) throws(Failure) -> T) throws(Failure) -> T {
        let dir = (path as NSString).deletingLastPathComponent
        do { try KeyDirectory.ensure(dir) } catch { throw .unreadable(path: dir, reason: error.reason) }
        let lockPath = "\(path).lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unreadable(path: lockPath, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        var content = try read()
        let result = try change(&content)
        do {
            let data = try JSONCoding.encoder(pretty: true).encode(content)
            try AtomicFile.write(Array(data), to: path, mode: 0o600)
        } catch {
            throw .unreadable(path: path, reason: "cannot write: \(error)")
        }
        return result
    }
}
