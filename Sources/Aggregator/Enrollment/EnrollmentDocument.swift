/// One enrollment document (the enrolled agents, the bootstrap tokens, the pending joins) wherever it
/// lives: a JSON file in `keys.dir` (``LockedJSONFile``) beside an SQLite store, or a row of the shared
/// PostgreSQL database (``PostgresDocument``), so that every aggregator of a highly available set sees
/// the same enrollments. The stores keep their rules; a document only reads and changes atomically.
public protocol EnrollmentDocument<Content>: Sendable {
    associatedtype Content: Codable & Sendable
    /// Where it is, for messages: a file path, or the database and the document's name.
    var path: String { get }
    func read() throws(KeysFileError) -> Content
    /// Applies `change` with every other writer excluded, and stores the result, unless `change` throws
    /// (then nothing is stored).
    func modify<T>(_ change: (inout Content) throws(KeysFileError) -> T) throws(KeysFileError) -> T
    /// Changes whenever the content does (cheap: looked at on handshakes); nil when unknown.
    func stamp() -> String?
}

/// Where an aggregator keeps its enrollment documents.
public enum EnrollmentBackend: Sendable {
    /// `agents.json`, `tokens.json` and `pending.json` in this directory.
    case files(keysDir: String)
    /// The `regwatch_document` table of a shared PostgreSQL database.
    case postgres(PostgresDocuments)

    func document<C: Codable & Sendable>(_ name: String, fileName: String, empty: C, kind: String) -> any EnrollmentDocument<C> {
        switch self {
        case .files(let dir): LockedJSONFile(path: "\(dir)/\(fileName)", empty: empty, kind: kind)
        case .postgres(let documents): documents.document(name, fileName: fileName, empty: empty, kind: kind)
        }
    }

    /// Refreshes what ``EnrollmentDocument/stamp()`` says, where that takes a query (PostgreSQL).
    public func refreshStamps() throws(KeysFileError) {
        if case .postgres(let documents) = self { try documents.refreshVersions() }
    }

    /// On PostgreSQL, takes in the `keys.dir` files a previous SQLite setup left, for each document the
    /// database does not hold yet. The first change of a document would, but done at `serve`'s start it
    /// does not depend on which aggregator changes something first (one with an empty `keys.dir` would
    /// otherwise start the document empty). Returns the files imported.
    public func importFiles() throws(KeysFileError) -> [String] {
        guard case .postgres = self else { return [] }
        var imported: [String] = []
        if try importIfAbsent(EnrollmentStore(self).file) { imported.append(EnrollmentStore.fileName) }
        if try importIfAbsent(TokenStore(self).file) { imported.append(TokenStore.fileName) }
        if try importIfAbsent(PendingJoinStore(self).file) { imported.append(PendingJoinStore.fileName) }
        return imported
    }

    private func importIfAbsent<C: Codable & Sendable>(_ document: any EnrollmentDocument<C>) throws(KeysFileError) -> Bool {
        guard let document = document as? PostgresDocument<C> else { return false }
        return try document.importIfAbsent()
    }

    /// Where the documents are, for messages (`no agents enrolled in …`).
    public var location: String {
        switch self {
        case .files(let dir): dir
        case .postgres(let documents): documents.location.description
        }
    }
}
