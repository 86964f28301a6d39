import FoundationEssentials

/// A strict RFC 8259 syntax check, as Go's `encoding/json` (and so dockerd) applies it.
///
/// Foundation's parser is lenient (it accepts trailing commas, for one), and a `daemon.json` it accepts
/// can still keep dockerd from starting. This finds the first violation and its byte offset.
struct StrictJSON {
    struct Violation: Equatable {
        var offset: Int
        var message: String
    }

    /// A member of the top-level object: the key's bytes (with quotes) and the value's byte range.
    struct Member: Equatable {
        var keyRange: Range<Int>
        var valueRange: Range<Int>
    }

    private let b: [UInt8]
    private var i = 0
    /// Members of the top-level object, in file order (empty when the top level is not an object).
    private(set) var members: [Member] = []
    /// Where the top-level object's braces are.
    private(set) var objectRange: Range<Int>?

    static func check(_ bytes: [UInt8]) -> Violation? {
        if case .failure(let violation) = topLevelMembers(bytes) { return violation }
        return nil
    }

    private init(b: [UInt8]) { self.b = b }

    /// Parses strictly and returns the top-level object's members and brace range; a violation otherwise.
    static func topLevelMembers(_ bytes: [UInt8]) -> Result<(members: [Member], object: Range<Int>?), Violation> {
        var p = StrictJSON(b: bytes)
        do throws(Violation) {
            p.skipSpace()
            try p.value(depth: 0)
            p.skipSpace()
            if p.i < bytes.count { throw Violation(offset: p.i, message: "invalid character \(p.describe()) after top-level value") }
            return .success((p.members, p.objectRange))
        } catch {
            return .failure(error)
        }
    }

    private func describe() -> String {
        guard i < b.count else { return "end of input" }
        let c = b[i]
        return c >= 0x20 && c < 0x7F ? "'\(Character(UnicodeScalar(c)))'" : "0x" + (c < 0x10 ? "0" : "") + String(c, radix: 16)
    }

    private mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private func fail(_ what: String) -> Violation {
        Violation(offset: i, message: i < b.count ? "invalid character \(describe()) \(what)" : "unexpected end of JSON input")
    }

    private mutating func value(depth: Int) throws(Violation) {
        guard depth < 512 else { throw fail("(nested too deeply)") }
        guard i < b.count else { throw fail("") }
        switch b[i] {
        case UInt8(ascii: "{"): try object(depth: depth)
        case UInt8(ascii: "["): try array(depth: depth)
        case UInt8(ascii: "\""): try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw fail("looking for beginning of value")
        }
    }

    private mutating func object(depth: Int) throws(Violation) {
        let open = i
        i += 1
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            if depth == 0 { objectRange = open..<i }
            return
        }
        while true {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("looking for beginning of object key string") }
            let keyStart = i
            try string()
            let keyEnd = i
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("after object key") }
            i += 1
            skipSpace()
            let valueStart = i
            try value(depth: depth + 1)
            if depth == 0 { members.append(Member(keyRange: keyStart..<keyEnd, valueRange: valueStart..<i)) }
            skipSpace()
            guard i < b.count else { throw fail("") }
            if b[i] == UInt8(ascii: "}") {
                i += 1
                if depth == 0 { objectRange = open..<i }
                return
            }
            guard b[i] == UInt8(ascii: ",") else { throw fail("after object key:value pair") }
            i += 1
            skipSpace()
        }
    }

    private mutating func array(depth: Int) throws(Violation) {
        i += 1
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return }
        while true {
            try value(depth: depth + 1)
            skipSpace()
            guard i < b.count else { throw fail("") }
            if b[i] == UInt8(ascii: "]") { i += 1; return }
            guard b[i] == UInt8(ascii: ",") else { throw fail("after array element") }
            i += 1
            skipSpace()
        }
    }

    private mutating func string() throws(Violation) {
        i += 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return }
            if c < 0x20 { throw fail("in string literal") }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { break }
                switch b[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    i += 1
                    for _ in 0..<4 {
                        guard i < b.count, isHex(b[i]) else { throw fail("in \\u hexadecimal character escape") }
                        i += 1
                    }
                default: throw fail("in string escape code")
                }
                continue
            }
            i += 1
        }
        throw fail("")
    }

    private func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
    }

    private mutating func literal(_ word: String) throws(Violation) {
        for expected in word.utf8 {
            guard i < b.count, b[i] == expected else { throw fail("in literal \(word) (expecting '\(Character(UnicodeScalar(expected)))')") }
            i += 1
        }
    }

    private mutating func number() throws(Violation) {
        func digits(_ p: inout StrictJSON) -> Int {
            let start = p.i
            while p.i < p.b.count, p.b[p.i] >= 48, p.b[p.i] <= 57 { p.i += 1 }
            return p.i - start
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("in numeric literal") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits(&self) }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw fail("after decimal point in numeric literal") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("in exponent of numeric literal") }
        }
    }
}

extension StrictJSON.Violation: Error {}
