/// A JSON string literal written by hand, for code that builds JSON text directly (the store's JSON
/// columns on the ingest path, the textual `daemon.json` edit) instead of going through an encoder.
public enum JSONText {
    /// Appends `s` as a quoted JSON string; the common case without escapes is one append.
    public static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        if isPlain(s) {
            out += s
        } else {
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Appends `s` quoted to UTF-8 bytes: a copy when nothing needs escaping.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        var s = s
        let copied = s.withUTF8 { utf8 in
            guard isPlain(utf8) else { return false }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: utf8)
            out.append(UInt8(ascii: "\""))
            return true
        }
        if !copied {
            var text = ""
            appendQuoted(s, to: &text)
            text.withUTF8 { out.append(contentsOf: $0) }
        }
    }

    /// Whether `s` needs no escape inside a JSON string.
    static func isPlain(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { isPlain($0) }
    }

    static func isPlain(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        !utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }

    public static func quoted(_ s: String) -> String {
        var out = ""
        appendQuoted(s, to: &out)
        return out
    }
}
