import Foundation
import GRDB
import PostgresNIO
@testable import RegwatchAggregator
import RegwatchTestSupport
import Testing

/// The two store backends the store suites run against: the SQLite file and a real PostgreSQL server.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A fresh, empty, migrated store: a new file, or a new database on the suite's PostgreSQL server.
    func open(_ name: String = "fleet") throws -> TestStore {
        switch self {
        case .sqlite:
            let path = StoreFixture.path(name)
            let store = try FleetStore(path: path)
            return TestStore(store: store, raw: .sqlite(store), reopen: { try FleetStore(path: path) })
        case .postgres:
            let server = try SharedPostgres.server.get()
            let url = try server.createDatabase("t_\(UUID().uuidString.prefix(8).lowercased())")
            let location = try PostgresLocation.parse(url)
            let store = try PostgresFleetStore(location: location, password: server.password)
            return TestStore(store: store, raw: .postgres(store), reopen: { try PostgresFleetStore(location: location, password: server.password) })
        }
    }
}

/// One PostgreSQL cluster for the whole test process (each test gets its own database in it); its
/// watcher stops it when the process exits.
enum SharedPostgres {
    static let server = Result { try PostgresServer("suite") }
}

/// A store under test and a raw view of its tables, to check rows the API does not show.
struct TestStore {
    enum Raw {
        case sqlite(FleetStore)
        case postgres(PostgresFleetStore)
    }

    /// A cell, typed alike on both backends (a PostgreSQL boolean reads as SQLite's 0 or 1).
    enum Cell: Equatable, CustomStringConvertible {
        case null, int(Int64), double(Double), text(String)

        var string: String? { if case .text(let s) = self { s } else { nil } }
        var int: Int64? { if case .int(let i) = self { i } else { nil } }
        var double: Double? {
            switch self {
            case .double(let d): d
            case .int(let i): Double(i)
            default: nil
            }
        }

        var description: String {
            switch self {
            case .null: "NULL"
            case .int(let i): "\(i)"
            case .double(let d): "\(d)"
            case .text(let s): s
            }
        }
    }

    let store: any FleetStoring
    let raw: Raw
    /// Another store on the same data, as a restarted aggregator (or a second one) opens it.
    let reopen: () throws -> any FleetStoring

    var backend: StoreBackend {
        if case .sqlite = raw { .sqlite } else { .postgres }
    }

    /// Rows of `sql`, written in the SQL both backends read (`NOT valid`, not `valid = 0`).
    func rows(_ sql: String) throws -> [[Cell]] {
        switch raw {
        case .sqlite(let s):
            return try s.pool.read { db in
                try Row.fetchAll(db, sql: sql).map { row in
                    row.databaseValues.map { v in
                        switch v.storage {
                        case .null: .null
                        case .int64(let i): .int(i)
                        case .double(let d): .double(d)
                        case .string(let t): .text(t)
                        case .blob(let b): .text(String(decoding: b, as: UTF8.self))
                        }
                    }
                }
            }
        case .postgres(let s):
            return try s.read { c in
                try s.run(c, PostgresQuery(unsafeSQL: sql)).map { row in
                    try row.map { cell in
                        guard cell.bytes != nil else { return .null }
                        switch cell.dataType {
                        case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
                        case .int2, .int4, .int8: return .int(Int64(try cell.decode(Int.self)))
                        case .float4, .float8: return .double(try cell.decode(Double.self))
                        default: return .text(try cell.decode(String.self))
                        }
                    }
                }
            }
        }
    }

    func count(_ table: String, _ filter: String = "true") throws -> Int {
        Int(try rows("SELECT COUNT(*) FROM \(table) WHERE \(filter)").first?.first?.int ?? -1)
    }

    /// Makes inserting a pull event with image `image` fail inside the database, as a full disk or a
    /// constraint would: the way to see that a failing row takes its whole batch with it.
    func failInserts(ofImage image: String) throws {
        switch raw {
        case .sqlite(let s):
            try s.pool.write { db in
                try db.execute(sql: "CREATE TRIGGER boom BEFORE INSERT ON pull_event WHEN NEW.image = '\(image)' BEGIN SELECT RAISE(ABORT, 'boom'); END")
            }
        case .postgres(let s):
            try s.write { c in
                try s.run(c, PostgresQuery(unsafeSQL: "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$"))
                try s.run(c, PostgresQuery(unsafeSQL: """
                    CREATE TRIGGER boom BEFORE INSERT ON pull_event FOR EACH ROW WHEN (NEW.image = '\(image)') EXECUTE FUNCTION boom()
                    """))
            }
        }
    }
}
