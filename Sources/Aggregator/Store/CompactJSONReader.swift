import RegwatchShared

/// Reads the store's own compact JSON columns (`host.probes`, `probe_report.probes`): an array of
/// arrays of scalars. The read path (API, correlation, roll-up) decodes these columns in bulk, so this
/// walks the UTF-8 bytes with the wire's `JSONReader` instead of Foundation; it accepts any valid JSON
/// of that shape (escapes and exponents included) and reports anything else as unreadable.
enum CompactJSONReader {
    enum Value: Equatable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)

        var string: String? { if case .string(let s) = self { s } else { nil } }
        var double: Double? { if case .number(let d) = self { d } else { nil } }
        var int: Int? { if case .number(let d) = self, let i = Int(exactly: d) { i } else { nil } }
    }

    /// Calls `body` with each inner array; false when the text is not an array of arrays of scalars.
    @discardableResult
    static func forEachRow(_ text: String, _ body: ([Value]) -> Void) -> Bool {
        var text = text
        return text.withUTF8 { forEachRow(bytes: $0, body) }
    }

    /// The same over UTF-8 bytes (a column SQLite holds).
    @discardableResult
    static func forEachRow(bytes: UnsafeBufferPointer<UInt8>, _ body: ([Value]) -> Void) -> Bool {
        guard bytes.count > 0 else { return false }
        var reader = JSONReader(bytes)
        var row: [Value] = []
        do throws(FastPathBail) {
            try reader.array { (r: inout JSONReader) throws(FastPathBail) in
                row.removeAll(keepingCapacity: true)
                try r.array { (r: inout JSONReader) throws(FastPathBail) in
                    row.append(try scalar(&r))
                }
                body(row)
            }
            try reader.end()
            return true
        } catch {
            return false
        }
    }

    private static func scalar(_ r: inout JSONReader) throws(FastPathBail) -> Value {
        switch try r.peek() {
        case UInt8(ascii: "\""): return .string(try r.string())
        case UInt8(ascii: "n"): try r.literal("null"); return .null
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool(try r.bool())
        case UInt8(ascii: "["), UInt8(ascii: "{"): throw FastPathBail()
        default:
            // The reader's fast decimals first; exponents (`1e-07`, as Swift prints small values) here.
            var fast = r
            if let v = try? fast.double() {
                r = fast
                return .number(v)
            }
            let start = r.i
            while r.i < r.bytes.count, isNumberByte(r.bytes[r.i]) { r.i += 1 }
            let text = Substring(decoding: UnsafeBufferPointer(rebasing: r.bytes[start..<r.i]), as: UTF8.self)
            guard let v = Double(text), v.isFinite else { throw FastPathBail() }
            return .number(v)
        }
    }

    private static func isNumberByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }
}
