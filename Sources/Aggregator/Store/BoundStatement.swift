import Foundation
import GRDB
#if canImport(GRDBSQLite)
import GRDBSQLite
#elseif canImport(SQLite3)
import SQLite3
#endif

/// A cached statement that the ingest path executes many times per transaction, driven through the
/// SQLite C API: reset, bind each value in place, step, reset.
///
/// Why: ingest runs a few statements for every report in a transaction (one `probe_report` row, the
/// host's row, runtime states when they change). Through GRDB's `execute(arguments:)` every row
/// built a `StatementArguments` array of existentials; even `execute()` after binding through
/// `StatementBinding` still cleared all bindings, copied every Swift string into a temporary C string
/// and ran GRDB's per-statement checks. Measured with `regwatch-ingest-bench`, that was as much CPU as
/// SQLite's own work. Here `execute(_:)` is generic over a parameter pack of ``SQLiteBindable``
/// values, each bound by `sqlite3_bind_*`; text is copied once into a ``BindArena`` that SQLite reads
/// in place.
///
/// What GRDB still does: prepares and caches the statement (`cachedStatement`), finalizes it with the
/// connection, and owns the transaction (`FleetStore.write` runs these inside `inTransaction`). What
/// skipping its `execute()` gives up is bookkeeping this store does not use: transaction observers and
/// `ValueObservation` regions (none are registered on the fleet database) and the detection of
/// statements that begin or end transactions (these never do). On an error the statement is reset
/// (reusable, per SQLite) and a `DatabaseError` is thrown, which rolls the transaction back.
struct BoundStatement {
    let statement: Statement
    private let handle: OpaquePointer
    private let arena: BindArena

    init(_ db: Database, sql: String, arena: BindArena) throws {
        self.arena = arena
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        // GRDB may have left arguments bound from its own use of the cached statement.
        sqlite3_reset(handle)
    }

    /// Binds `values` to parameters 1, 2, … in order and runs the statement to completion.
    func execute<each V: SQLiteBindable>(_ values: repeat each V) throws {
        try bind(repeat each values)
        let code = sqlite3_step(handle)
        sqlite3_reset(handle)
        if code != SQLITE_DONE && code != SQLITE_ROW { throw failure(code) }
    }

    /// Binds whatever `body` passes to its ``Binder`` (parameters 1, 2, … in call order) and runs the
    /// statement to completion: for statements whose parameter count varies with the data (multi-row
    /// `VALUES`).
    func execute(binding body: (inout Binder) throws -> Void) throws {
        sqlite3_reset(handle)
        arena.reset()
        var binder = Binder(statement: self)
        try body(&binder)
        let code = sqlite3_step(handle)
        sqlite3_reset(handle)
        if code != SQLITE_DONE && code != SQLITE_ROW { throw failure(code) }
    }

    struct Binder {
        fileprivate let statement: BoundStatement
        fileprivate var index: CInt = 1

        @inline(__always)
        mutating func callAsFunction<V: SQLiteBindable>(_ value: V) throws {
            let code = value.bind(to: statement.handle, at: index, arena: statement.arena)
            if code != SQLITE_OK { throw statement.failure(code, "cannot bind parameter \(index)") }
            index += 1
        }
    }

    /// Binds `values`, steps once and hands the first row (if any) to `read` while it is current.
    func fetchOne<each V: SQLiteBindable, T>(_ values: repeat each V, read: (Row) -> T) throws -> T? {
        try bind(repeat each values)
        defer { sqlite3_reset(handle) }
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return read(Row(handle))
        case SQLITE_DONE: return nil
        case let code: throw failure(code)
        }
    }

    /// Column accessors for the current row of ``fetchOne(_:read:)``.
    struct Row {
        let handle: OpaquePointer
        init(_ handle: OpaquePointer) { self.handle = handle }
        func double(_ i: Int32) -> Double { sqlite3_column_double(handle, i) }
        func int(_ i: Int32) -> Int { Int(sqlite3_column_int64(handle, i)) }
        func isNull(_ i: Int32) -> Bool { sqlite3_column_type(handle, i) == SQLITE_NULL }
        /// The UTF-8 bytes of a text column (empty for NULL), valid only inside `body`.
        func withText<T>(_ i: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
            guard let p = sqlite3_column_text(handle, i) else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
            return body(UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, i))))
        }
        /// Compares a text column with `value` without building a String.
        func text(_ i: Int32, equals value: String?) -> Bool {
            guard let value else { return isNull(i) }
            guard let p = sqlite3_column_text(handle, i) else { return false }
            let n = Int(sqlite3_column_bytes(handle, i))
            var v = value
            return v.withUTF8 { $0.count == n && (n == 0 || memcmp($0.baseAddress!, p, n) == 0) }
        }
    }

    private func bind<each V: SQLiteBindable>(_ values: repeat each V) throws {
        sqlite3_reset(handle)
        arena.reset()
        var index: CInt = 1
        for value in repeat each values {
            let code = value.bind(to: handle, at: index, arena: arena)
            // Binding fails only for an out-of-range index (a programming error here) or out of memory.
            if code != SQLITE_OK { throw failure(code, "cannot bind parameter \(index)") }
            index += 1
        }
    }

    fileprivate func failure(_ code: CInt, _ message: String? = nil) -> DatabaseError {
        let text = message ?? sqlite3_db_handle(handle).flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: text, sql: statement.sql)
    }
}

/// A value ``BoundStatement`` binds with one `sqlite3_bind_*` call, the same storage classes GRDB uses
/// (text, real, integer, NULL; `Bool` as 0/1).
protocol SQLiteBindable {
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt
}

/// Where ``BoundStatement`` copies the text it binds, so SQLite can use it in place (`SQLITE_STATIC`)
/// instead of allocating and freeing a copy of every string of every row (`SQLITE_TRANSIENT`), which
/// measured as a sixth of the committing thread's time.
///
/// One arena per ``FleetStore``, used only inside its write transactions (GRDB runs those one at a
/// time), reset before each statement binds. SQLite reads bound text only while the statement that
/// bound it runs; every ``BoundStatement`` execution rebinds all of its parameters first, so text a
/// statement bound earlier is never read after the arena moved on. It lives as long as the store, so
/// no cached statement can point at freed memory.
final class BindArena: @unchecked Sendable {
    static let capacity = 256 * 1024
    private let base = UnsafeMutableRawPointer.allocate(byteCount: BindArena.capacity, alignment: 16)
    private var used = 0

    deinit { base.deallocate() }

    func reset() { used = 0 }

    /// A stable copy of `bytes` until the next `reset()`, or nil when the arena is full.
    @inline(__always)
    func copy(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar>? {
        let n = bytes.count
        guard used + n <= Self.capacity else { return nil }
        let p = base + used
        if n > 0 { p.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        used += n
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the bytes before the call returns (for text the arena cannot hold).
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

@inline(__always)
private func bindText(_ utf8: UnsafeBufferPointer<UInt8>, to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt {
    if let p = arena.copy(utf8) {
        return sqlite3_bind_text(statement, index, p, CInt(utf8.count), nil) // SQLITE_STATIC
    }
    return sqlite3_bind_text(statement, index, UnsafeRawPointer(utf8.baseAddress!).assumingMemoryBound(to: CChar.self), CInt(utf8.count), transient)
}

extension String: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt {
        var s = self
        return s.withUTF8 { bindText($0, to: statement, at: index, arena: arena) }
    }
}

/// UTF-8 text built as bytes (the ingest path's JSON columns, ``JSONBytes``), bound as TEXT.
extension Array: SQLiteBindable where Element == UInt8 {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt {
        withUnsafeBufferPointer { bindText($0, to: statement, at: index, arena: arena) }
    }
}

extension Double: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt { sqlite3_bind_double(statement, index, self) }
}

extension Int: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt { sqlite3_bind_int64(statement, index, Int64(self)) }
}

extension Int64: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt { sqlite3_bind_int64(statement, index, self) }
}

extension Bool: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt { sqlite3_bind_int64(statement, index, self ? 1 : 0) }
}

extension Optional: SQLiteBindable where Wrapped: SQLiteBindable {
    @inline(__always)
    func bind(to statement: OpaquePointer, at index: CInt, arena: BindArena) -> CInt {
        switch self {
        case .some(let value): value.bind(to: statement, at: index, arena: arena)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}
