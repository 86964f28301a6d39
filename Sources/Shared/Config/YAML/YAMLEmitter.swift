/// Writes a ``YAMLNode`` back as block YAML that ``YAMLParser`` (and Go's yaml.v2) reads as the same
/// document: plain scalars stay plain (so `true` stays a bool, `5000` a number), quoted ones are written
/// double-quoted. Comments and the original layout are not kept.
public enum YAMLEmitter {
    public static func emit(_ node: YAMLNode) -> String {
        var out = ""
        switch node.kind {
        case .mapping(let entries) where !entries.isEmpty: mapping(entries, indent: 0, into: &out)
        case .sequence(let items) where !items.isEmpty: sequence(items, indent: 0, into: &out)
        default:
            out = inline(node)
            // A plain `---` or `...` at the start of a line is a document marker: indented, it reads back as
            // the scalar it is (found by fuzzing, FuzzAgentConfig).
            if out.unicodeScalars.starts(with: "---".unicodeScalars) || out.unicodeScalars.starts(with: "...".unicodeScalars) { out = " " + out }
            out += "\n"
        }
        return out
    }

    static func mapping(_ entries: [YAMLNode.Entry], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for e in entries {
            out += pad + key(e.key) + ":"
            value(e.value, indent: indent, into: &out)
        }
    }

    static func sequence(_ items: [YAMLNode], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            switch item.kind {
            case .mapping(let entries) where !entries.isEmpty:
                // `- first: v` then the rest aligned under `first`.
                var block = ""
                mapping(entries, indent: indent + 2, into: &block)
                out += pad + "- " + block.dropFirst(indent + 2)
            case .sequence(let inner) where !inner.isEmpty:
                out += pad + "-\n"
                sequence(inner, indent: indent + 2, into: &out)
            default:
                out += pad + "-" + (item.isNull ? "" : " " + inline(item)) + "\n"
            }
        }
    }

    /// After `key:` — a scalar or an empty collection on the line, a block below it.
    static func value(_ v: YAMLNode, indent: Int, into out: inout String) {
        switch v.kind {
        case .mapping(let entries) where !entries.isEmpty:
            out += "\n"
            mapping(entries, indent: indent + 2, into: &out)
        case .sequence(let items) where !items.isEmpty:
            out += "\n"
            sequence(items, indent: indent + 2, into: &out)
        default:
            out += (v.isNull ? "" : " " + inline(v)) + "\n"
        }
    }

    static func inline(_ v: YAMLNode) -> String {
        switch v.kind {
        case .mapping: return "{}"
        case .sequence: return "[]"
        case .scalar(let text, let quoted): return quoted ? quote(text) : text
        }
    }

    /// Keys that read back as the same string in plain style stay plain.
    static func key(_ k: String) -> String {
        guard let first = k.unicodeScalars.first, first.properties.isAlphabetic || first == "_",
              k.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/:".unicodeScalars.contains($0) }),
              k.unicodeScalars.last != ":", !zip(k.unicodeScalars, k.unicodeScalars.dropFirst()).contains(where: { $0 == ":" && $1 == ":" }),
              YAMLNode(.scalar(k, quoted: false), line: 0).bool == nil, !YAMLNode(.scalar(k, quoted: false), line: 0).isNull
        else { return quote(k) }
        return k
    }

    /// JSON's string escapes are a subset of YAML's double-quoted ones.
    static func quote(_ s: String) -> String {
        var out = ""
        JSONText.appendQuoted(s, to: &out)
        return out
    }
}

extension YAMLNode {
    /// Same document content, whatever the lines: how a rewrite is checked against what it meant to write.
    public func sameContent(as other: YAMLNode) -> Bool {
        switch (kind, other.kind) {
        // `~`, `null` and nothing are the same null.
        case (.scalar(let a, let qa), .scalar(let b, let qb)): return (isNull && other.isNull) || (a == b && qa == qb)
        case (.sequence(let a), .sequence(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.sameContent(as: $1) }
        case (.mapping(let a), .mapping(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value.sameContent(as: $1.value) }
        default: return false
        }
    }
}
