import FoundationEssentials

/// Any JSON document, for the files and answers whose shape is not ours (Docker's `config.json` and
/// `/info`, journald lines, token responses). `JSONSerialization` lives in full Foundation, which the agent
/// does not load; this reads through the same `JSONDecoder`.
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members by key: the last of duplicate keys wins, as in Go's `encoding/json`.
    case object([String: JSONValue])

    /// The value of `bytes`; nil when they are not JSON.
    ///
    /// Read as Go's `encoding/json` (dockerd) reads it where `JSONDecoder` would refuse the whole document,
    /// so that a `daemon.json` dockerd starts with is not reported as broken and never edited (each case found
    /// by fuzzing, Fuzz/Sources/FuzzDaemonJSON): invalid UTF-8 and a lone `\uD800`-`\uDFFF` escape in a string
    /// read as U+FFFD; a zero with an exponent (`0e1`) or one too small for a Double (`1E-555`) reads as 0.
    public static func parse(_ bytes: some Sequence<UInt8>) -> JSONValue? {
        var text = Array(String(decoding: Array(bytes), as: UTF8.self).utf8)
        goCompatible(&text)
        return try? JSONDecoder().decode(JSONValue.self, from: Data(text))
    }

    /// Rewrites, outside strings, zero-valued number tokens with an exponent as `0` (or `-0`) and, inside
    /// strings, `\u` escapes of unpaired surrogates as `\uFFFD`.
    static func goCompatible(_ text: inout [UInt8]) {
        func surrogate(at k: Int) -> UInt32? {
            guard k + 6 <= text.count, text[k] == UInt8(ascii: "\\"), text[k + 1] == UInt8(ascii: "u"),
                  let v = UInt32(String(decoding: text[(k + 2)..<(k + 6)], as: UTF8.self), radix: 16), (0xD800...0xDFFF).contains(v) else { return nil }
            return v
        }
        func isNumberByte(_ c: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: ".") || c | 0x20 == UInt8(ascii: "e")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
        }
        var inString = false, escaped = false
        var k = 0
        while k < text.count {
            let c = text[k]
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") {
                    if let high = surrogate(at: k) {
                        if (0xD800...0xDBFF).contains(high), let low = surrogate(at: k + 6), (0xDC00...0xDFFF).contains(low) {
                            k += 12
                            continue
                        }
                        text.replaceSubrange((k + 2)..<(k + 6), with: Array("FFFD".utf8))
                        k += 6
                        continue
                    }
                    escaped = true
                } else if c == UInt8(ascii: "\"") { inString = false }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) {
                var end = k
                while end < text.count, isNumberByte(text[end]) { end += 1 }
                let token = text[k..<end]
                if token.contains(where: { $0 | 0x20 == UInt8(ascii: "e") }), Double(String(decoding: token, as: UTF8.self)) == 0 {
                    let zero = Array((c == UInt8(ascii: "-") ? "-0" : "0").utf8)
                    text.replaceSubrange(k..<end, with: zero)
                    end = k + zero.count
                }
                k = end
                continue
            }
            k += 1
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public subscript(key: String) -> JSONValue? { object?[key] }

    public var object: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// A list whose every element is a string; nil otherwise.
    public var strings: [String]? {
        guard let a = array else { return nil }
        let s = a.compactMap(\.string)
        return s.count == a.count ? s : nil
    }
}
