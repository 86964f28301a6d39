import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import RegwatchTestSupport
import Synchronization
import Testing

/// What only the PostgreSQL backend has: its URL and password files, migrations shared by several
/// aggregators, refusing a database that is not ours, and riding out a server restart. (What both
/// backends answer alike is checked by the store suites, which run on both.)
@Suite("PostgreSQL store")
struct PostgresStoreTests {
    typealias F = StoreFixture

    @Test("database URLs: user, host, port, database and sslmode are read; what is wrong is named")
    func urls() throws {
        let l = try PostgresLocation.parse("postgres://regwatch@db.internal:6432/fleet?sslmode=verify-full")
        #expect(l == PostgresLocation(user: "regwatch", host: "db.internal", port: 6432, database: "fleet", sslmode: .verifyFull))
        #expect(try PostgresLocation.parse("postgresql://u@[::1]/d") == PostgresLocation(user: "u", host: "::1", database: "d"))
        #expect(try PostgresLocation.parse("postgres://u@h/d").description == "postgres://u@h:5432/d?sslmode=prefer")
        for (url, problem) in [
            ("postgres://u:secret@h/d", "holds a password"),
            ("postgres://h/d", "no user"),
            ("postgres://u@h", "no database name"),
            ("postgres://u@h/d?sslmode=maybe", "sslmode \"maybe\" is not one of disable, prefer, require, verify-ca, verify-full"),
            ("postgres://u@h/d?connect_timeout=5", "unknown parameter \"connect_timeout\""),
            ("postgres://u@h:0/d", "port 0 is out of range"),
            ("mysql://u@h/d", "expected postgres://"),
        ] {
            #expect(throws: PostgresLocationError.self, "\(url)") { try PostgresLocation.parse(url) }
            do { _ = try PostgresLocation.parse(url) } catch { #expect(error.message.contains(problem), "\(url): \(error.message)") }
        }
    }

    @Test("passwords: databasePasswordFile's first line, else the first matching PGPASSFILE line; files others can read are refused")
    func passwords() throws {
        let dir = temporaryDirectory("pgpass")
        let location = PostgresLocation(user: "regwatch", host: "db", port: 5432, database: "fleet")
        func write(_ name: String, _ text: String, mode: mode_t = 0o600) -> String {
            let path = "\(dir)/\(name)"
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            chmod(path, mode)
            return path
        }
        #expect(try location.password(passwordFile: write("pw", "s3cret\nignored\n"), environment: [:]) == "s3cret")
        #expect(throws: PostgresLocationError.self) { try location.password(passwordFile: write("empty", "\n"), environment: [:]) }
        #expect(throws: PostgresLocationError.self) { try location.password(passwordFile: write("open", "x\n", mode: 0o644), environment: [:]) }
        #expect(throws: PostgresLocationError.self) { try location.password(passwordFile: "\(dir)/missing", environment: [:]) }

        let pgpass = write("pgpass", """
            # comment
            other:5432:fleet:regwatch:wrong-host
            db:5432:fleet:someone:wrong-user
            db:*:fleet:regwatch:a\\:b\\\\c
            *:*:*:*:fallback
            """)
        #expect(try location.password(passwordFile: nil, environment: ["PGPASSFILE": pgpass]) == "a:b\\c")
        var other = location
        other.database = "metrics"
        #expect(try other.password(passwordFile: nil, environment: ["PGPASSFILE": pgpass]) == "fallback")
        #expect(try location.password(passwordFile: nil, environment: ["HOME": dir]) == nil, "no ~/.pgpass: no password")
        let open = write("pgpass-open", "*:*:*:*:x\n", mode: 0o640)
        do {
            _ = try location.password(passwordFile: nil, environment: ["PGPASSFILE": open])
            Issue.record("a group-readable PGPASSFILE was read")
        } catch {
            #expect(error.message == "\(open): PGPASSFILE is readable by others (mode 640); chmod 600 it")
        }
        let broken = write("pgpass-broken", "db:5432:fleet\n")
        #expect(throws: PostgresLocationError("\(broken):1: expected hostname:port:database:username:password")) {
            try location.password(passwordFile: nil, environment: ["PGPASSFILE": broken])
        }
    }

    @Test("config: a postgres:// database is parsed at load; its password file only goes with it")
    func config() throws {
        func load(_ yaml: String) throws -> AggregatorConfig {
            try AggregatorConfig.parse(ConfigNode.parse(yaml, file: "aggregator.yaml", environment: [:]))
        }
        let c = try load("database: postgres://regwatch@db:5432/fleet?sslmode=require\ndatabasePasswordFile: /run/secrets/pg\n")
        #expect(c.postgres == PostgresLocation(user: "regwatch", host: "db", database: "fleet", sslmode: .require))
        #expect(c.databasePasswordFile == "/run/secrets/pg")
        #expect(try load("database: /var/lib/regwatch/fleet.db\n").postgres == nil)
        for (yaml, message) in [
            ("database: postgres://regwatch:pw@db/fleet\n", "aggregator.yaml:1: database: the URL holds a password; put it in databasePasswordFile (or PGPASSFILE) instead"),
            ("database: mysql://u@db/fleet\n", "aggregator.yaml:1: database: expected a file path or a postgres:// URL"),
            ("database: /var/lib/regwatch/fleet.db\ndatabasePasswordFile: /run/pg\n",
             "aggregator.yaml:2: databasePasswordFile: only a postgres:// database has a password; database is a file"),
        ] {
            do {
                _ = try load(yaml)
                Issue.record("accepted: \(yaml)")
            } catch {
                #expect("\(error)" == message)
            }
        }
    }

    @Test("migrations: applied once, by one of several aggregators starting together; a reopen finds them")
    func migrations() throws {
        let server = try SharedPostgres.server.get()
        let location = try PostgresLocation.parse(try server.createDatabase("t_migrate"))
        let stores = Mutex<[Result<PostgresFleetStore, StoreError>]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let r = Result { () throws(StoreError) in try PostgresFleetStore(location: location, password: server.password) }
            stores.withLock { $0.append(r) }
        }
        let opened = try stores.withLock { try $0.map { try $0.get() } }
        #expect(opened.count == 4)
        #expect(try server.psql("SELECT string_agg(id, ',' ORDER BY id) FROM regwatch_migrations", database: "t_migrate") == "v1,v2-leader-term,v3-enrollment-documents")
        let again = try PostgresFleetStore(location: location, password: server.password, readOnly: true)
        #expect(try again.status(now: F.t0, staleAfter: 3).schemaVersion == "v3-enrollment-documents")

        // The same tables, views and columns as the SQLite file's (names compared folded, as PostgreSQL folds them),
        // but for the enrollment documents, which an SQLite setup keeps as files in keys.dir.
        let sqlite = try StoreBackend.sqlite.open("schema")
        var sqliteColumns: [String] = []
        for table in try sqlite.rows("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name <> 'grdb_migrations'") {
            let name = table[0].string ?? ""
            for column in try sqlite.rows("SELECT name FROM pragma_table_info('\(name)')") {
                sqliteColumns.append("\(name).\(column[0].string?.lowercased() ?? "")")
            }
        }
        let pgColumns = try server.psql("""
            SELECT string_agg(table_name || '.' || column_name, ' ' ORDER BY table_name, column_name) FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name NOT IN ('regwatch_migrations', 'regwatch_document')
            """, database: "t_migrate").split(separator: " ").map(String.init)
        #expect(pgColumns == sqliteColumns.sorted(), "only in PostgreSQL: \(Set(pgColumns).subtracting(sqliteColumns).sorted()); only in SQLite: \(Set(sqliteColumns).subtracting(pgColumns).sorted())")
        #expect(try again.status(now: F.t0, staleAfter: 3).path == location.description)
        for s in opened { s.close() }
        again.close()
    }

    @Test("refused before anything is written: a newer regwatch's database, another application's, a read-only open of an empty one")
    func refusals() throws {
        let server = try SharedPostgres.server.get()
        let newer = try PostgresLocation.parse(try server.createDatabase("t_newer"))
        try PostgresFleetStore(location: newer, password: server.password).close()
        try server.psql("INSERT INTO regwatch_migrations (id, appliedAt) VALUES ('v99-sharding', 0)", database: "t_newer")
        #expect(throws: StoreError.newerSchema(path: newer.description, unknownMigrations: ["v99-sharding"])) {
            try PostgresFleetStore(location: newer, password: server.password)
        }

        let other = try PostgresLocation.parse(try server.createDatabase("t_other"))
        try server.psql("CREATE TABLE photos (id int); ALTER TABLE photos OWNER TO \(PostgresServer.user)", database: "t_other")
        #expect(throws: StoreError.notRegwatchDatabase(path: other.description, reason: "it holds tables of another application (photos)")) {
            try PostgresFleetStore(location: other, password: server.password)
        }
        #expect(try server.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", database: "t_other") == "1")

        let empty = try PostgresLocation.parse(try server.createDatabase("t_empty"))
        #expect(throws: StoreError.olderSchema(path: empty.description, missingMigrations: ["v1", "v2-leader-term", "v3-enrollment-documents"])) {
            try PostgresFleetStore(location: empty, password: server.password, readOnly: true)
        }
        #expect(try server.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", database: "t_empty") == "0")
    }

    @Test("cannot open: a wrong password, a server that is not there, TLS the server does not offer; each named in one line")
    func cannotOpen() throws {
        let server = try SharedPostgres.server.get()
        let location = try PostgresLocation.parse(server.url())
        do {
            _ = try PostgresFleetStore(location: location, password: "wrong")
            Issue.record("opened with a wrong password")
        } catch {
            #expect(error.code == "cannot_open")
            #expect(error.description.hasPrefix("\(location): cannot open the database: "))
            #expect(error.description.contains("password authentication failed") && error.description.contains("28P01"), "\(error)")
        }
        var nowhere = location
        nowhere.port = RegistryHarness.freePort()
        do {
            _ = try PostgresFleetStore(location: nowhere, password: server.password)
            Issue.record("opened a database on a port nobody listens on")
        } catch {
            #expect(error.code == "cannot_open" && error.description.lowercased().contains("refused"), "\(error)")
        }
        var tls = location
        tls.sslmode = .require
        do {
            _ = try PostgresFleetStore(location: tls, password: server.password)
            Issue.record("sslmode=require passed against a server without TLS")
        } catch {
            #expect(error.code == "cannot_open" && error.description.contains("ssl"), "\(error)")
        }
    }

    @Test("a PostgreSQL restart: the call that meets it fails and commits nothing, the next fails at once; after a second they reconnect")
    func restart() async throws {
        let server = try PostgresServer("restart")
        let store = try PostgresFleetStore(location: PostgresLocation.parse(server.url()), password: server.password)
        defer { store.close() }
        try F.ingest(store, [F.report("node-1", probes: [F.probe(F.hub)])])
        server.kill()
        var batch = IngestBatch()
        batch.append(events: [F.event(1)], hostID: "node-1")
        #expect(throws: StoreError.self) { try store.commit(batch) }
        // Right after, a call fails at once instead of waiting on the server again.
        do {
            _ = try store.commit(batch)
            Issue.record("committed with the server down")
        } catch {
            #expect(error.description.contains("unreachable, retrying within"), "\(error)")
        }
        try server.start()
        try await Task.sleep(for: PostgresSession.retryAfter)
        let result = try store.commit(batch)
        #expect(result.committedSeqs == ["node-1": [1]] && result.eventsInserted == 1)
        #expect(try store.hosts(now: F.t0, staleAfter: 3).map(\.id) == ["node-1"])
        #expect(try store.status(now: F.t0, staleAfter: 3).pullEvents == 1)
    }
}
