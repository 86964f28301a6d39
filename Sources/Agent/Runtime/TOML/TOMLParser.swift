/// Reads TOML 1.0 documents: containerd's `config.toml` and `hosts.toml`, CRI-O's `registries.conf`.
///
/// Our own reader rather than a library: the one available pulls full Foundation into the agent, and
/// these files need only the core of the format. Errors carry the line and column, as containerd's
/// own decoder reports them, because a malformed `hosts.toml` makes containerd drop its mirrors silently.
public struct TOMLParser {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var message: String
        public var description: String { "\(line):\(column): \(message)" }
    }

    private let b: [UInt8]
    private var i = 0
    private var line = 1
    private var lineStart = 0
    private var root = TOMLTable()
    /// Tables opened by a `[header]`: opening one twice is an error.
    private var headers: Set<[String]> = []
    /// Arrays made by `[[header]]`: only those take more tables.
    private var tableArrays: Set<[String]> = []
    /// Tables created by dotted keys, which a later `[header]` may not reopen.
    private var dottedTables: Set<[String]> = []

    public static func parse(_ text: String) throws(Failure) -> TOMLTable {
        var parser = TOMLParser(b: Array(text.utf8))
        try parser.document()
        return parser.root
    }

    private init(b: [UInt8]) { self.b = b }

    // MARK: Document

    private mutating func document() throws(Failure) {
        var current: [String] = []
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3; lineStart = 3 }
        while i < b.count {
            skipSpace()
            guard let c = peek else { break }
            switch c {
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "#"):
                try endOfLine()
            case UInt8(ascii: "["):
                i += 1
                let header = (line, i - lineStart)
                if peek == UInt8(ascii: "[") {
                    i += 1
                    let path = try key()
                    try expect("]]", "\"]]\" after the table array name")
                    try appendTable(at: path, header: header)
                    current = path
                } else {
                    let path = try key()
                    try expect("]", "\"]\" after the table name")
                    try openTable(at: path, header: header)
                    current = path
                }
                try endOfLine()
            default:
                let (path, v, at) = try keyValue()
                try insert(v, at: current, path, at: at)
                try endOfLine()
            }
        }
    }

    private mutating func openTable(at path: [String], header at: (Int, Int)) throws(Failure) {
        if headers.contains(path) || dottedTables.contains(path) || tableArrays.contains(path) {
            throw Failure(line: at.0, column: at.1, message: "table [\(Self.dotted(path))] is defined more than once")
        }
        headers.insert(path)
        try Self.modify(&root, path, prefix: []) { (_: inout TOMLTable) throws(Failure) in } onConflict: { p throws(Failure) in
            throw Failure(line: at.0, column: at.1, message: "[\(Self.dotted(path))]: \(Self.dotted(p)) is already a value, not a table")
        }
    }

    private mutating func appendTable(at path: [String], header at: (Int, Int)) throws(Failure) {
        let parent = Array(path.dropLast()), last = path.last!
        let isArray = tableArrays.contains(path)
        try Self.modify(&root, parent, prefix: []) { (t: inout TOMLTable) throws(Failure) in
            switch t[last] {
            case nil: t[last] = .array([.table(TOMLTable())])
            case .array(var items) where isArray:
                items.append(.table(TOMLTable()))
                t[last] = .array(items)
            default: throw Failure(line: at.0, column: at.1, message: "[[\(Self.dotted(path))]]: \(Self.dotted(path)) is already defined as something else")
            }
        } onConflict: { p throws(Failure) in
            throw Failure(line: at.0, column: at.1, message: "[[\(Self.dotted(path))]]: \(Self.dotted(p)) is already a value, not a table")
        }
        tableArrays.insert(path)
        // A new element starts fresh: its sub-tables may be opened again.
        headers = headers.filter { !($0.count > path.count && Array($0.prefix(path.count)) == path) }
    }

    private mutating func insert(_ v: TOMLValue, at table: [String], _ key: [String], at pos: (Int, Int)) throws(Failure) {
        let parent = table + key.dropLast()
        for n in table.count..<parent.count { dottedTables.insert(Array(parent.prefix(n + 1))) }
        try Self.put(v, key, under: table, in: &root, at: pos)
    }

    /// Sets `key` (dotted) in the table at `prefix` of `table`; a key set twice or a value in the way is an error.
    private static func put(_ v: TOMLValue, _ key: [String], under prefix: [String], in table: inout TOMLTable, at pos: (Int, Int)) throws(Failure) {
        let last = key.last!
        try modify(&table, prefix + key.dropLast(), prefix: []) { (t: inout TOMLTable) throws(Failure) in
            guard t[last] == nil else { throw Failure(line: pos.0, column: pos.1, message: "duplicate key \(dotted(key))") }
            t[last] = v
        } onConflict: { p throws(Failure) in
            throw Failure(line: pos.0, column: pos.1, message: "\(dotted(key)): \(dotted(p)) is already a value, not a table")
        }
    }

    /// `key = value`, with where the key starts.
    private mutating func keyValue() throws(Failure) -> ([String], TOMLValue, (Int, Int)) {
        let at = position
        let path = try key()
        skipSpace()
        try expect("=", "\"=\" after a key")
        skipSpace()
        return (path, try value(), at)
    }

    /// Runs `body` on the table at `path`, creating tables on the way; through an array of tables it
    /// goes into the last one.
    private static func modify(
        _ table: inout TOMLTable, _ path: [String], prefix: [String],
        _ body: (inout TOMLTable) throws(Failure) -> Void, onConflict: ([String]) throws(Failure) -> Void
    ) throws(Failure) {
        guard let first = path.first else { return try body(&table) }
        let rest = Array(path.dropFirst()), here = prefix + [first]
        switch table[first] {
        case nil:
            var t = TOMLTable()
            try modify(&t, rest, prefix: here, body, onConflict: onConflict)
            table[first] = .table(t)
        case .table(var t):
            try modify(&t, rest, prefix: here, body, onConflict: onConflict)
            table[first] = .table(t)
        case .array(var items):
            guard case .table(var t)? = items.last else { return try onConflict(here) }
            try modify(&t, rest, prefix: here, body, onConflict: onConflict)
            items[items.count - 1] = .table(t)
            table[first] = .array(items)
        default:
            try onConflict(here)
        }
    }

    private static func dotted(_ path: [String]) -> String {
        path.map { k in k.utf8.allSatisfy(Self.isBareKeyByte) && !k.isEmpty ? k : "\"\(k)\"" }.joined(separator: ".")
    }

    // MARK: Keys

    private mutating func key() throws(Failure) -> [String] {
        var parts: [String] = []
        while true {
            skipSpace()
            guard let c = peek, c != 0x0A, c != 0x0D, c != UInt8(ascii: "#") else { throw fail("a key is missing") }
            if c == UInt8(ascii: "\"") {
                i += 1
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                i += 1
                parts.append(try literalString())
            } else {
                let start = i
                while let d = peek, Self.isBareKeyByte(d) { i += 1 }
                guard i > start else { throw fail("invalid character \(describe(c)) in a key") }
                parts.append(String(decoding: b[start..<i], as: UTF8.self))
            }
            skipSpace()
            guard peek == UInt8(ascii: ".") else { return parts }
            i += 1
        }
    }

    static func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
    }

    // MARK: Values

    private mutating func value() throws(Failure) -> TOMLValue {
        guard let c = peek else { throw fail("a value is missing") }
        switch c {
        case UInt8(ascii: "\""):
            if b[i...].starts(with: Array("\"\"\"".utf8)) { i += 3; return .string(try multilineString(literal: false)) }
            i += 1
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if b[i...].starts(with: Array("'''".utf8)) { i += 3; return .string(try multilineString(literal: true)) }
            i += 1
            return .string(try literalString())
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "{"): return try inlineTable()
        default: return try scalar()
        }
    }

    private mutating func array() throws(Failure) -> TOMLValue {
        let open = position
        let unterminated = Failure(line: open.0, column: open.1, message: "unterminated array (no closing \"]\")")
        i += 1
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            guard let c = peek else { throw unterminated }
            if c == UInt8(ascii: "]") { i += 1; return .array(items) }
            items.append(try value())
            try skipBlank()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            guard peek != nil else { throw unterminated }
            guard peek == UInt8(ascii: "]") else { throw fail("expected \",\" or \"]\" in an array") }
        }
    }

    private mutating func inlineTable() throws(Failure) -> TOMLValue {
        i += 1
        var t = TOMLTable()
        skipSpace()
        if peek == UInt8(ascii: "}") { i += 1; return .table(t) }
        while true {
            let (path, v, at) = try keyValue()
            try Self.put(v, path, under: [], in: &t, at: at)
            skipSpace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            guard peek == UInt8(ascii: "}") else { throw fail("expected \",\" or \"}\" in an inline table (on one line)") }
            i += 1
            return .table(t)
        }
    }

    /// Numbers, booleans and date-times.
    private mutating func scalar() throws(Failure) -> TOMLValue {
        let start = i
        let at = position
        while let c = peek, !Self.isValueEnd(c) { i += 1 }
        // A date and a time may be separated by one space.
        if i - start == 10, peek == UInt8(ascii: " "), i + 3 < b.count, Self.isDigit(b[i + 1]), Self.isDigit(b[i + 2]), b[i + 3] == UInt8(ascii: ":") {
            i += 1
            while let c = peek, !Self.isValueEnd(c) { i += 1 }
        }
        let token = String(decoding: b[start..<i], as: UTF8.self)
        if let v = Self.scalar(token) { return v }
        throw Failure(line: at.0, column: at.1, message: token.isEmpty ? "a value is missing" : "invalid value (strings are quoted; the value is not shown, it may be a secret)")
    }

    static func scalar(_ token: String) -> TOMLValue? {
        switch token {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        let u = Array(token.utf8)
        guard !u.isEmpty else { return nil }
        // Date-times: 1979-05-27, 07:32:00, 1979-05-27T07:32:00Z and the like.
        if (u.count >= 10 && u[4] == UInt8(ascii: "-") && u[7] == UInt8(ascii: "-")) || (u.count >= 8 && u[2] == UInt8(ascii: ":")) {
            return u.allSatisfy({ isDigit($0) || ":-.TtZz+ ".utf8.contains($0) }) ? .dateTime(token) : nil
        }
        // Underscores only between digits.
        for (n, c) in u.enumerated() where c == UInt8(ascii: "_") {
            guard n > 0, n + 1 < u.count, isHexDigit(u[n - 1]), isHexDigit(u[n + 1]) else { return nil }
        }
        let plain = String(token.filter { $0 != "_" })
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where plain.hasPrefix(prefix) {
            return Int(plain.dropFirst(2), radix: radix).map(TOMLValue.integer)
        }
        let digits = plain.hasPrefix("+") || plain.hasPrefix("-") ? plain.dropFirst() : Substring(plain)
        guard let first = digits.utf8.first, isDigit(first) else { return nil }
        if digits.utf8.allSatisfy(isDigit) {
            if digits.count > 1, first == UInt8(ascii: "0") { return nil }
            return Int(plain).map(TOMLValue.integer)
        }
        guard digits.utf8.allSatisfy({ isDigit($0) || ".eE+-".utf8.contains($0) }), !digits.hasSuffix("."),
              !digits.contains(".e"), !digits.contains(".E") else { return nil }
        return Double(plain).map(TOMLValue.float)
    }

    // MARK: Strings

    /// After the opening quote.
    private mutating func basicString() throws(Failure) -> String {
        let open = Failure(line: line, column: i - lineStart, message: "")
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"): try escape(into: &out)
            case UInt8(ascii: "\n"): throw Failure(line: open.line, column: open.column, message: "a string cannot span lines (use \"\"\")")
            default:
                if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("a control character in a string") }
                out.append(c)
            }
        }
        throw Failure(line: open.line, column: open.column, message: "unterminated string")
    }

    private mutating func literalString() throws(Failure) -> String {
        let open = Failure(line: line, column: i - lineStart, message: "")
        let start = i
        while let c = peek {
            if c == UInt8(ascii: "'") {
                i += 1
                return String(decoding: b[start..<(i - 1)], as: UTF8.self)
            }
            if c == UInt8(ascii: "\n") { throw Failure(line: open.line, column: open.column, message: "a string cannot span lines (use ''')") }
            i += 1
            // As in basic strings: containerd's reader (and TOML) refuses the file, so must this.
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("a control character in a string") }
        }
        throw Failure(line: open.line, column: open.column, message: "unterminated string")
    }

    private mutating func multilineString(literal: Bool) throws(Failure) -> String {
        let quote = literal ? UInt8(ascii: "'") : UInt8(ascii: "\"")
        // A newline right after the opening quotes is not part of the string.
        if peek == UInt8(ascii: "\r") { i += 1 }
        if peek == UInt8(ascii: "\n") { newline() }
        var out: [UInt8] = []
        while let c = peek {
            if c == quote, i + 2 < b.count, b[i + 1] == quote, b[i + 2] == quote {
                // Up to two more quotes belong to the string.
                var extra = 0
                while i + 3 + extra < b.count, b[i + 3 + extra] == quote, extra < 2 { extra += 1 }
                out.append(contentsOf: repeatElement(quote, count: extra))
                i += 3 + extra
                return String(decoding: out, as: UTF8.self)
            }
            i += 1
            if c == UInt8(ascii: "\n") { line += 1; lineStart = i; out.append(c); continue }
            if c < 0x20 && c != 0x09 && c != 0x0D || c == 0x7F { throw fail("a control character in a string") }
            if !literal, c == UInt8(ascii: "\\") {
                // A backslash at the end of a line joins it to the next, dropping the whitespace between.
                var j = i
                while j < b.count, b[j] == 0x20 || b[j] == 0x09 { j += 1 }
                if j < b.count, b[j] == 0x0A || b[j] == 0x0D {
                    i = j
                    while let d = peek, d == 0x20 || d == 0x09 || d == 0x0A || d == 0x0D {
                        if d == 0x0A { newline() } else { i += 1 }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            out.append(c)
        }
        throw fail("unterminated multi-line string")
    }

    private mutating func escape(into out: inout [UInt8]) throws(Failure) {
        guard let e = peek else { throw fail("unterminated string") }
        i += 1
        // At the backslash.
        let at = Failure(line: line, column: i - 1 - lineStart, message: "")
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "e"): out.append(0x1B)
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(e)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let width = e == UInt8(ascii: "u") ? 4 : 8
            guard i + width <= b.count, let v = UInt32(String(decoding: b[i..<(i + width)], as: UTF8.self), radix: 16),
                  let scalar = Unicode.Scalar(v) else { throw Failure(line: at.line, column: at.column, message: "invalid \\\(Character(Unicode.Scalar(e))) escape") }
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
            i += width
        default: throw Failure(line: at.line, column: at.column, message: "unknown escape \\\(Character(Unicode.Scalar(e)))")
        }
    }

    // MARK: Bytes

    private var peek: UInt8? { i < b.count ? b[i] : nil }
    private var position: (Int, Int) { (line, i - lineStart + 1) }

    private mutating func newline() {
        i += 1
        line += 1
        lineStart = i
    }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 { i += 1 }
    }

    /// Spaces, newlines and comments (inside arrays).
    private mutating func skipBlank() throws(Failure) {
        while let c = peek {
            if c == 0x20 || c == 0x09 || c == 0x0D { i += 1 }
            else if c == 0x0A { newline() }
            else if c == UInt8(ascii: "#") { while let d = peek, d != 0x0A { i += 1 } }
            else { return }
        }
    }

    /// Only a comment may follow on the line.
    private mutating func endOfLine() throws(Failure) {
        skipSpace()
        if peek == UInt8(ascii: "#") {
            while let d = peek, d != 0x0A {
                if d < 0x20 && d != 0x09 && d != 0x0D { throw fail("a control character in a comment") }
                i += 1
            }
        }
        if peek == 0x0D { i += 1 }
        guard let c = peek else { return }
        guard c == 0x0A else { throw fail("expected the end of the line, found \(describe(c))") }
        newline()
    }

    private mutating func expect(_ text: String, _ what: String) throws(Failure) {
        guard b[i...].starts(with: Array(text.utf8)) else { throw fail("expected \(what)") }
        i += text.utf8.count
    }

    private func fail(_ message: String) -> Failure {
        Failure(line: line, column: i - lineStart + 1, message: message)
    }

    private func describe(_ c: UInt8) -> String {
        c >= 0x21 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte \(c)"
    }

    static func isValueEnd(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == UInt8(ascii: ",") || c == UInt8(ascii: "]")
            || c == UInt8(ascii: "}") || c == UInt8(ascii: "#")
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }
}
