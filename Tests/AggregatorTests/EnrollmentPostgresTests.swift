import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Enrollments, tokens and pending joins kept in a shared PostgreSQL database: two aggregators (two
/// backends on one database) see each other's changes, race for a token's last use fairly, and the first
/// change imports the `keys.dir` files an SQLite setup left.
@Suite("Enrollment documents in PostgreSQL", .serialized)
struct EnrollmentPostgresTests {
    /// Two backends on a fresh, migrated database, each with its own `keys.dir`.
    static func pair(keysDir: String = temporaryDirectory("enroll-pg")) throws -> (EnrollmentBackend, EnrollmentBackend, PostgresServer, PostgresLocation) {
        let server = try SharedPostgres.server.get()
        let location = try PostgresLocation.parse(server.createDatabase("e_\(UUID().uuidString.prefix(8).lowercased())"))
        try PostgresFleetStore(location: location, password: server.password).close()
        let a = EnrollmentBackend.postgres(try PostgresDocuments(location: location, password: server.password, keysDir: keysDir, logger: quietLogger))
        let b = EnrollmentBackend.postgres(try PostgresDocuments(location: location, password: server.password, keysDir: temporaryDirectory("enroll-pg-b"), logger: quietLogger))
        return (a, b, server, location)
    }

    @Test("a key accepted through one aggregator is enrolled for the other; its stamp changes there once refreshed; revoked there, refused here")
    func shared() throws {
        let (a, b, _, _) = try Self.pair()
        let key = try CurveKeyPair.generate().publicKey
        let authB = EnrollmentAuthenticator(backend: b, logger: quietLogger)
        #expect(authB.host(for: key) == nil)
        let before = EnrollmentStore(b).stamp()
        #expect(try EnrollmentStore(a).accept(host: "node-1", key: key) == .enrolled)
        try b.refreshStamps()
        #expect(EnrollmentStore(b).stamp() != before)
        // The stamp service reloads a database's documents (a handshake only reads what it loaded).
        #expect(authB.refresh().tables.active[key] == nil)
        #expect(authB.reload().tables.active[key] == "node-1")
        #expect(try EnrollmentStore(b).records().map(\.host) == ["node-1"])
        // The rules hold across aggregators: another key for the host is refused.
        #expect(throws: KeysFileError.hostHasAnotherKey(host: "node-1", key: key.z85)) {
            try EnrollmentStore(b).accept(host: "node-1", key: try CurveKeyPair.generate().publicKey)
        }
        _ = try EnrollmentStore(b).revoke(host: "node-1")
        try a.refreshStamps()
        let authA = EnrollmentAuthenticator(backend: a, logger: quietLogger)
        #expect(authA.reload().tables.revoked.contains(key))
        #expect(authA.authenticate(ZAPRequest(domain: "regwatch", address: "127.0.0.1", mechanism: "CURVE", clientKey: key)) == .deny(reason: "key revoked"))
    }

    @Test("a token with one use left, used by both aggregators at once 20 times: exactly one join each time gets it")
    func tokenRace() async throws {
        let (a, b, _, _) = try Self.pair()
        for round in 0..<20 {
            let token = try TokenStore(a).create(name: "t\(round)", ttl: nil, maxUses: 1)
            async let x = Task.detached { try TokenStore(a).use([token]) }.value
            async let y = Task.detached { try TokenStore(b).use([token]) }.value
            let verdicts = try await [x[0], y[0]]
            #expect(verdicts.filter { if case .valid = $0 { true } else { false } }.count == 1, "round \(round): \(verdicts)")
            #expect(try TokenStore(b).list().first { $0.name == "t\(round)" }?.uses == 1)
        }
    }

    @Test("pending joins: added through one, taken through the other; a change that throws writes nothing")
    func pending() throws {
        let (a, b, server, location) = try Self.pair()
        let key = try CurveKeyPair.generate().publicKey
        let entry = PendingJoinStore.Entry(host: "node-p", key: key.z85, labels: ["zone": "z1"], agentVersion: "t", reason: "manual mode",
                                           token: "none", firstSeen: Date(), lastSeen: Date(), attempts: 1)
        #expect(try PendingJoinStore(a).add(entry, limit: 10) == .added)
        #expect(try PendingJoinStore(b).pending().map(\.host) == ["node-p"])
        let version = try server.psql("SELECT version FROM regwatch_document WHERE name = 'pending'", database: location.database)
        #expect(throws: KeysFileError.noPendingJoin("node-q")) { try PendingJoinStore(b).take(host: "node-q", key: nil) }
        #expect(try server.psql("SELECT version FROM regwatch_document WHERE name = 'pending'", database: location.database) == version)
        #expect(try PendingJoinStore(b).take(host: "node-p", key: key).host == "node-p")
        #expect(try PendingJoinStore(a).pending().isEmpty)
    }

    @Test("the first change imports the keys.dir files an SQLite setup left; after it the database holds them and the files are not read")
    func importsFiles() throws {
        let dir = temporaryDirectory("enroll-import")
        let k1 = try CurveKeyPair.generate().publicKey, k2 = try CurveKeyPair.generate().publicKey
        #expect(try EnrollmentStore(keysDir: dir).accept(host: "old-1", key: k1) == .enrolled)
        let token = try TokenStore(keysDir: dir).create(name: "old-token", ttl: nil, maxUses: 5)
        let (a, b, _, _) = try Self.pair(keysDir: dir)
        // Read before any change: what the files say.
        #expect(try EnrollmentStore(a).records().map(\.host) == ["old-1"])
        #expect(try EnrollmentStore(b).records().isEmpty, "b has no files and the database no row yet")
        #expect(try EnrollmentStore(a).accept(host: "new-2", key: k2) == .enrolled)
        #expect(try EnrollmentStore(b).records().map(\.host) == ["old-1", "new-2"])
        #expect(try TokenStore(a).use([token]).first.map { if case .valid = $0 { true } else { false } } == true)
        #expect(try TokenStore(b).list().map(\.uses) == [1])
        // The file no longer counts.
        try Data("not json".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(EnrollmentStore.fileName)"))
        #expect(try EnrollmentStore(a).records().count == 2)
    }

    @Test("serve's import at start: the aggregator with the files imports them, one with an empty keys.dir imports nothing and does not start the documents empty")
    func importAtStart() throws {
        let dir = temporaryDirectory("enroll-import-start")
        let key = try CurveKeyPair.generate().publicKey
        #expect(try EnrollmentStore(keysDir: dir).accept(host: "old-1", key: key) == .enrolled)
        let (a, b, server, location) = try Self.pair(keysDir: dir)
        // b (no files) starts first: nothing is imported, nothing is written.
        #expect(try b.importFiles().isEmpty)
        #expect(try server.psql("SELECT count(*) FROM regwatch_document", database: location.database) == "0")
        #expect(try a.importFiles() == [EnrollmentStore.fileName])
        #expect(try EnrollmentStore(b).records().map(\.host) == ["old-1"])
        // Once there, a second import changes nothing.
        #expect(try a.importFiles().isEmpty)
    }

    @Test("a document that is not regwatch's: one line naming the database and the document; nothing written")
    func badDocument() throws {
        let (a, _, server, location) = try Self.pair()
        try server.psql("INSERT INTO regwatch_document (name, content, version) VALUES ('agents', '{\"agents\": 3}', 1)", database: location.database)
        do {
            _ = try EnrollmentStore(a).records()
            Issue.record("read a broken document")
        } catch {
            #expect(error.code == "enrollment.file_unreadable")
            #expect(error.description.contains("(enrollment agents)") && error.description.contains("not a regwatch enrollment document"), "\(error)")
            #expect(!error.description.contains("\n"))
        }
        #expect(throws: KeysFileError.self) { try EnrollmentStore(a).accept(host: "node-x", key: try CurveKeyPair.generate().publicKey) }
        #expect(try server.psql("SELECT content FROM regwatch_document WHERE name = 'agents'", database: location.database) == "{\"agents\": 3}")
    }
}
