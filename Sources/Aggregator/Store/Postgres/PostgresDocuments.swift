import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import RegwatchShared
import Synchronization

/// The enrollment documents of aggregators sharing a PostgreSQL database: one row per document in
/// `regwatch_document` (JSON text, and a version bumped by every change), on a connection of their own.
///
/// A change locks its row (`SELECT … FOR UPDATE`) for the read-modify-write, as the files' `flock` does,
/// so two aggregators using a token's last use, or accepting two keys for one host, take turns. The
/// first change of a document that is not in the database yet starts from the file of the same name in
/// `keys.dir`, if there is one: moving from SQLite to PostgreSQL keeps the enrollments, and from then
/// on the database holds them and the file is no longer read.
public final class PostgresDocuments: Sendable {
    let session: PostgresSession
    public let location: PostgresLocation
    /// Where the files of a previous SQLite setup are, imported on a document's first change.
    let keysDir: String
    /// Each document's version as last seen (``refreshVersions()``, and after this process's changes).
    private let versions = Mutex<[String: Int64]>([:])

    /// The schema must be migrated already: open the fleet store first (``AggregatorConfig/enrollmentBackend(configFile:logger:)`` does).
    public init(location: PostgresLocation, password: String?, keysDir: String,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) throws(StoreError) {
        self.location = location
        self.keysDir = keysDir
        session = try PostgresSession(location: location, password: password, group: group, logger: logger, answerTimeout: .seconds(5))
    }

    func document<C: Codable & Sendable>(_ name: String, fileName: String, empty: C, kind: String) -> PostgresDocument<C> {
        PostgresDocument(documents: self, name: name, seed: LockedJSONFile(path: "\(keysDir)/\(fileName)", empty: empty, kind: kind), kind: kind)
    }

    /// Reads every document's version: a change made by another aggregator shows in the stamps after this.
    public func refreshVersions() throws(KeysFileError) {
        let rows = try call("read the enrollment versions") { c in
            try session.run(c, "SELECT name, version FROM regwatch_document").map { try $0.decode((String, Int64).self) }
        }
        versions.withLock { $0 = Dictionary(rows, uniquingKeysWith: { a, _ in a }) }
    }

    func version(_ name: String) -> Int64? { versions.withLock { $0[name] } }
    func saw(_ name: String, version: Int64) { versions.withLock { $0[name] = max($0[name] ?? 0, version) } }

    func call<T>(_ what: String, _ body: (PostgresConnection) throws -> T) throws(KeysFileError) -> T {
        try named(what) { try session.withConnection(body) }
    }

    func transaction<T>(_ what: String, _ body: (PostgresConnection) throws -> T) throws(KeysFileError) -> T {
        try named(what) { try session.transaction(body) }
    }

    /// A failure as one line naming the database and what was being done; a store rule's error as it is.
    private func named<T>(_ what: String, _ body: () throws -> T) throws(KeysFileError) -> T {
        do { return try body() } catch let e as KeysFileError { throw e } catch {
            throw .unreadable(path: "\(location) (enrollment)", reason: "cannot \(what): \(StoreError.reason(postgres: error))")
        }
    }

    public func close() { session.close() }
}

/// One enrollment document in ``PostgresDocuments``.
struct PostgresDocument<Content: Codable & Sendable>: EnrollmentDocument {
    let documents: PostgresDocuments
    let name: String
    /// The file it starts from when the database has no row for it yet.
    let seed: LockedJSONFile<Content>
    let kind: String

    var path: String { "\(documents.location) (enrollment \(name))" }

    func read() throws(KeysFileError) -> Content {
        let row = try documents.call("read \(name)") { c in
            try documents.session.run(c, "SELECT content, version FROM regwatch_document WHERE name = \(name)").first?.decode((String, Int64).self)
        }
        guard let (text, version) = row else { return try seed.read() }
        documents.saw(name, version: version)
        return try decode(text)
    }

    func modify<T>(_ change: (inout Content) throws(KeysFileError) -> T) throws(KeysFileError) -> T {
        let (result, version) = try documents.transaction("change \(name)") { c -> (T, Int64) in
            let s = documents.session
            func locked() throws -> String? {
                try s.run(c, "SELECT content FROM regwatch_document WHERE name = \(name) FOR UPDATE").first?.decode(String.self)
            }
            var current = try locked()
            if current == nil {
                // The first change: start from the file, if an SQLite setup left one. Two aggregators may
                // both get here; one row is inserted and both then lock it.
                let seedText = try encode(seed.read())
                try s.run(c, "INSERT INTO regwatch_document (name, content, version) VALUES (\(name), \(seedText), 0) ON CONFLICT (name) DO NOTHING")
                current = try locked()
            }
            guard let text = current else { throw KeysFileError.unreadable(path: path, reason: "the row vanished while changing it") }
            var content = try decode(text)
            let result = try change(&content)
            let updated = try encode(content)
            let version = try s.run(c, "UPDATE regwatch_document SET content = \(updated), version = version + 1 WHERE name = \(name) RETURNING version")
                .first?.decode(Int64.self) ?? 0
            return (result, version)
        }
        documents.saw(name, version: version)
        return result
    }

    func stamp() -> String? { documents.version(name).map { "v\($0)" } }

    /// Stores the seed file's content if the database has no row for this document and the file exists.
    func importIfAbsent() throws(KeysFileError) -> Bool {
        guard FileManager.default.fileExists(atPath: seed.path) else { return false }
        let present = try documents.call("read \(name)") { c in
            try !documents.session.run(c, "SELECT 1 FROM regwatch_document WHERE name = \(name)").isEmpty
        }
        guard !present else { return false }
        // A change that changes nothing: it stores the seed (or finds another aggregator stored it first).
        try modify { (_: inout Content) throws(KeysFileError) in }
        return true
    }

    private func decode(_ text: String) throws(KeysFileError) -> Content {
        do { return try JSONCoding.decoder().decode(Content.self, from: Data(text.utf8)) } catch {
            throw .unreadable(path: path, reason: "not a regwatch \(kind) document: \(WireCodec.describe(error))")
        }
    }

    private func encode(_ content: Content) throws(KeysFileError) -> String {
        do { return String(decoding: try JSONCoding.encoder(pretty: false).encode(content), as: UTF8.self) } catch {
            throw .unreadable(path: path, reason: "cannot encode: \(error)")
        }
    }
}
