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

    /// Where the documents are, for messages (`no agents enrolled in …`).
    public var location: String {
        switch self {
        case .files(let dir): dir
        case .postgres(let documents): documents.location.description
        }
    }
}
