/// A JSON string literal written by hand, for code that builds JSON text directly (the store's JSON
/// columns on the ingest path, the textual `daemon.json` edit) instead of going through an encoder.
public enum JSONText {
    /// Appends `s` as a quoted JSON string; the common case without escapes is one append.
    public static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        var copy = s
        let plain = copy.withUTF8 { bytes in
            !bytes.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        }
        if plain {
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

    public static func quoted(_ s: String) -> String {
        var out = ""
        appendQuoted(s, to: &out)
        return out
    }
}
