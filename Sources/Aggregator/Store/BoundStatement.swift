import GRDB

/// A cached statement that the ingest path executes many times per transaction, binding each value
/// straight into the SQLite statement.
///
/// Why: with `execute(arguments:)` every row builds a `StatementArguments` array of existentials,
/// converts each value to a `DatabaseValue` and validates the count, which cost more than SQLite's own
/// work at ingest rates. Here `execute(_:)` is generic over a parameter pack, so each value is bound by
/// its own `StatementBinding` conformance (GRDB's public binding hook, `sqlite3_bind_*` underneath)
/// with no allocation, and then GRDB's `execute()` runs the statement, keeping GRDB's transaction
/// bookkeeping intact.
///
/// Before binding, `setUncheckedArguments` with no values resets the statement (SQLite refuses to bind
/// to a statement that ran and was not reset) and marks its arguments as set, so GRDB's `execute()` and
/// argument-less fetches run with the values bound here instead of validating an empty argument list.
/// A statement that failed is evicted from GRDB's cache, so the next transaction gets a fresh one.
struct BoundStatement {
    let statement: Statement

    init(_ db: Database, sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
    }

    /// Binds `values` to parameters 1, 2, … in order and runs the statement to completion.
    func execute<each V: StatementBinding>(_ values: repeat each V) throws {
        try bind(repeat each values)
        try statement.execute()
    }

    /// Binds `values` and returns the first row, if any.
    func fetchOne<each V: StatementBinding>(_ values: repeat each V) throws -> Row? {
        try bind(repeat each values)
        return try Row.fetchOne(statement)
    }

    private func bind<each V: StatementBinding>(_ values: repeat each V) throws {
        statement.setUncheckedArguments(StatementArguments())
        let sqlite = statement.sqliteStatement
        var index: CInt = 1
        for value in repeat each values {
            let code = value.bind(to: sqlite, at: index)
            // Binding fails only for an out-of-range index (a programming error here) or out of memory.
            if code != 0 { throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot bind parameter \(index)", sql: statement.sql) }
            index += 1
        }
    }
}
