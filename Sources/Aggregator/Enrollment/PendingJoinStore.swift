import Foundation
import RegwatchShared

/// Joins waiting for an operator, and keys an operator rejected, in `keys.dir/pending.json`.
///
/// The list is bounded (`enrollment.maxPending`): a flood of joins fills it and is then refused, it
/// never grows. A rejected key stays rejected (its joins are refused, ZAP turns it away) so an agent that
/// keeps retrying does not land in the list again.
public struct PendingJoinStore: Sendable {
    public static let fileName = "pending.json"

    public struct Entry: Codable, Sendable, Equatable {
        public var host: String
        public var key: String
        public var labels: [String: String]
        public var agentVersion: String
        /// Why it waits: manual mode, a host id enrolled with another key, a host id outside the pattern.
        public var reason: String
        /// What the join presented: `none`, `valid (NAME)`, or why the token does not count.
        public var token: String
        public var firstSeen: Date
        public var lastSeen: Date
        public var attempts: Int
    }

    public struct Rejected: Codable, Sendable, Equatable {
        public var host: String
        public var key: String
        public var rejectedAt: Date
    }

    struct FileContent: Codable, Sendable {
        var version = 1
        var pending: [Entry] = []
        var rejected: [Rejected] = []
    }

    let file: any EnrollmentDocument<FileContent>
    public var path: String { file.path }

    public init(keysDir: String) {
        self.init(.files(keysDir: keysDir))
    }

    public init(_ backend: EnrollmentBackend) {
        file = backend.document("pending", fileName: Self.fileName, empty: FileContent(), kind: "pending-join")
    }

    public func pending() throws(KeysFileError) -> [Entry] { try file.read().pending }

    public func rejectedKeys() throws(KeysFileError) -> Set<CurvePublicKey> {
        Set(try file.read().rejected.compactMap { try? CurvePublicKey(z85: $0.key) })
    }

    public enum AddOutcome: Sendable, Equatable {
        case added
        /// Already waiting: `lastSeen` and `attempts` updated.
        case repeated
        case full
        case rejected
    }

    /// Adds a join to the list (or notes a repeat of one already there), within `limit` entries.
    public func add(_ entry: Entry, limit: Int) throws(KeysFileError) -> AddOutcome {
        try file.modify { (content: inout FileContent) throws(KeysFileError) -> AddOutcome in
            if content.rejected.contains(where: { $0.key == entry.key }) { return .rejected }
            if let i = content.pending.firstIndex(where: { $0.key == entry.key }) {
                content.pending[i].lastSeen = entry.lastSeen
                content.pending[i].attempts += 1
                content.pending[i].reason = entry.reason
                content.pending[i].token = entry.token
                return .repeated
            }
            guard content.pending.count < limit else { return .full }
            content.pending.append(entry)
            return .added
        }
    }

    /// Removes and returns the pending entry of `host` (the one with `key`, when given).
    public func take(host: String, key: CurvePublicKey?) throws(KeysFileError) -> Entry {
        try file.modify { (content: inout FileContent) throws(KeysFileError) -> Entry in
            let matches = content.pending.indices.filter { content.pending[$0].host == host && (key == nil || content.pending[$0].key == key!.z85) }
            guard let i = matches.first else { throw .noPendingJoin(host) }
            guard matches.count == 1 else { throw .severalPendingJoins(host: host, count: matches.count) }
            return content.pending.remove(at: i)
        }
    }

    /// Drops the pending entry of a key that got enrolled by other means (`keys accept --key FILE`).
    public func remove(key: CurvePublicKey) throws(KeysFileError) {
        try remove(keys: [key])
    }

    /// Drops the pending entries of these keys; writes nothing when none is pending.
    public func remove(keys: Set<CurvePublicKey>) throws(KeysFileError) {
        let z85 = Set(keys.map(\.z85))
        guard try pending().contains(where: { z85.contains($0.key) }) else { return }
        try file.modify { (content: inout FileContent) throws(KeysFileError) in
            content.pending.removeAll { z85.contains($0.key) }
        }
    }

    /// Rejects every pending key of `host`; returns them.
    public func reject(host: String, now: Date = Date()) throws(KeysFileError) -> [Entry] {
        try file.modify { (content: inout FileContent) throws(KeysFileError) -> [Entry] in
            let taken = content.pending.filter { $0.host == host }
            guard !taken.isEmpty else { throw .noPendingJoin(host) }
            content.pending.removeAll { $0.host == host }
            content.rejected += taken.map { Rejected(host: $0.host, key: $0.key, rejectedAt: now) }
            return taken
        }
    }

    public func stamp() -> String? { file.stamp() }
}
