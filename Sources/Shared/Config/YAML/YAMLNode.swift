/// A node of a YAML document as ``YAMLParser`` reads it: the block and flow subset that configuration files
/// use (mappings, lists, plain, quoted and block scalars, comments), each with the line it starts on.
public struct YAMLNode: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A scalar as written; `quoted` when it was in quotes or a block scalar (never null, bool or number).
        case scalar(String, quoted: Bool)
        /// Keys in file order; keys are unique.
        case mapping([Entry])
        case sequence([YAMLNode])
    }

    public struct Entry: Sendable, Equatable {
        public var key: String
        public var keyLine: Int
        public var value: YAMLNode

        public init(key: String, keyLine: Int, value: YAMLNode) {
            self.key = key
            self.keyLine = keyLine
            self.value = value
        }
    }

    public var kind: Kind
    /// 1-based line the node starts on.
    public var line: Int

    public init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }

    static func null(line: Int) -> YAMLNode { YAMLNode(.scalar("", quoted: false), line: line) }

    public var mapping: [Entry]? {
        if case .mapping(let entries) = kind { return entries }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }

    /// The text of a scalar (nil for a mapping or list).
    public var scalar: String? {
        if case .scalar(let text, _) = kind { return text }
        return nil
    }

    public subscript(key: String) -> YAMLNode? { mapping?.first { $0.key == key }?.value }

    /// `~`, `null` or nothing at all, unquoted.
    public var isNull: Bool {
        guard case .scalar(let text, false) = kind else { return false }
        return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// YAML 1.1 booleans, as Go's yaml.v2 (k3s) and the configs written for it use them.
    public var bool: Bool? {
        switch scalar {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    /// Decimal (with `_` separators), `0x` hex or `0o` octal.
    public var int: Int? {
        guard var text = scalar else { return nil }
        text.removeAll { $0 == "_" }
        var sign = 1
        if text.hasPrefix("-") { sign = -1; text.removeFirst() } else if text.hasPrefix("+") { text.removeFirst() }
        let magnitude: Int?
        if text.hasPrefix("0x") { magnitude = Int(text.dropFirst(2), radix: 16) }
        else if text.hasPrefix("0o") { magnitude = Int(text.dropFirst(2), radix: 8) }
        else if text.first?.isNumber == true { magnitude = Int(text) } else { magnitude = nil }
        return magnitude.map { $0 * sign }
    }

    public var double: Double? {
        guard let text = scalar else { return nil }
        if let i = int { return Double(i) }
        let plain = text.replacing("_", with: "")
        guard plain.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true else { return nil }
        return Double(plain)
    }
}
