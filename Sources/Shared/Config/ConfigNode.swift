import FoundationEssentials
import Synchronization

/// A cursor into a parsed YAML config that knows its key path and line, so every error names both.
///
/// Readers ask for each key they know with its default and finish with ``rejectUnknownKeys()``: a
/// misspelled key is an error instead of a silently ignored setting.
///
/// Values may name environment variables, `${NODE_NAME}` or `${ZONE:-z1}` (a default when unset or
/// empty), so one file (a Kubernetes ConfigMap) serves every node; `$${` is a literal `${`. An unset
/// variable without a default is an error naming the key and the variable.
public struct ConfigNode {
    public let file: String
    public let path: String
    let node: YAMLNode?
    private let consumed: ConsumedKeys
    let environment: [String: String]

    /// Parses `text` (the content of `file`). An empty document is an empty mapping.
    public static func parse(_ text: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> ConfigNode {
        let node: YAMLNode?
        do {
            node = try YAMLParser.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, key: "", message: "not valid YAML: \(error.problem)")
        }
        if let node, node.mapping == nil, !node.isNull {
            throw ConfigError(file: file, line: node.line, key: "", message: "top level must be a mapping of keys")
        }
        return ConfigNode(file: file, path: "", node: node.flatMap { $0.isNull ? nil : $0 }, environment: environment)
    }

    /// Reads and parses a file; a missing file is an error naming it.
    public static func load(_ file: String) throws(ConfigError) -> ConfigNode {
        guard let data = FileManager.default.contents(atPath: file) else {
            let reason = FileManager.default.fileExists(atPath: file) ? "cannot be read" : "no such file"
            throw ConfigError(file: file, key: "", message: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: file, key: "", message: "not UTF-8 text")
        }
        return try parse(text, file: file)
    }

    /// For an absent key: the line of the mapping it is missing from.
    private let parentLine: Int?

    init(file: String, path: String, node: YAMLNode?, parentLine: Int? = nil, environment: [String: String]) {
        self.file = file
        self.path = path
        self.node = node
        self.parentLine = parentLine
        self.environment = environment
        consumed = ConsumedKeys()
    }

    public var line: Int? { node?.line ?? parentLine }

    /// The scalar text when this value is a plain scalar (not a mapping or list), as written.
    public var scalarText: String? { node?.scalar }

    /// The scalar text with environment variables expanded; nil when this value is not a scalar.
    func expandedScalar() throws(ConfigError) -> String? {
        guard let text = node?.scalar else { return nil }
        return try EnvironmentExpansion.expand(text, environment: environment, at: self)
    }

    /// True when the scalar names a variable: typed readers then parse the expanded text themselves.
    private var needsExpansion: Bool { node?.scalar?.contains("${") ?? false }
    public var isPresent: Bool { node.map { !$0.isNull } ?? false }

    /// The key is written in the file, even with an empty value (`docker:` enables a section with defaults).
    public var exists: Bool { node != nil }

    public func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, key: path, message: message)
    }

    private func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value under `key` (absent values are a node with `isPresent == false`).
    public subscript(key: String) -> ConfigNode {
        consumed.insert(key)
        let child = node?[key]
        return ConfigNode(file: file, path: childPath(key), node: child, parentLine: line, environment: environment)
    }

    /// Elements of a sequence; an absent key is an empty list.
    public func list() throws(ConfigError) -> [ConfigNode] {
        guard isPresent else { return [] }
        guard let seq = node?.sequence else { throw error("expected a list") }
        return seq.enumerated().map { ConfigNode(file: file, path: "\(path)[\($0.offset)]", node: $0.element, environment: environment) }
    }

    /// Keys and values of a mapping, in file order; an absent key is empty.
    public func entries() throws(ConfigError) -> [(String, ConfigNode)] {
        guard isPresent else { return [] }
        guard let map = node?.mapping else { throw error("expected a mapping") }
        return map.map { ($0.key, ConfigNode(file: file, path: childPath($0.key), node: $0.value, environment: environment)) }
    }

    public func string(default value: String? = nil) throws(ConfigError) -> String? {
        guard isPresent else { return value }
        guard node?.scalar != nil else { throw error("expected a string") }
        return try expandedScalar()
    }

    public func requiredString() throws(ConfigError) -> String {
        guard let s = try string(), !s.isEmpty else { throw error("required") }
        return s
    }

    public func bool(default value: Bool) throws(ConfigError) -> Bool {
        guard isPresent else { return value }
        if needsExpansion {
            switch try expandedScalar() {
            case "true": return true
            case "false": return false
            case let t: throw error("expected true or false, got \"\(t ?? "?")\"")
            }
        }
        guard let b = node?.bool else { throw error("expected true or false, got \"\(node?.scalar ?? "?")\"") }
        return b
    }

    public func int(default value: Int, range: ClosedRange<Int>? = nil) throws(ConfigError) -> Int {
        guard isPresent else { return value }
        let parsed = needsExpansion ? (try expandedScalar()).flatMap { Int($0) } : node?.int
        guard let i = parsed else { throw error("expected a whole number, got \"\(node?.scalar ?? "?")\"") }
        if let range, !range.contains(i) { throw error("\(i) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    public func double(default value: Double, range: ClosedRange<Double>? = nil) throws(ConfigError) -> Double {
        guard isPresent else { return value }
        let parsed = needsExpansion ? (try expandedScalar()).flatMap { Double($0) } : node?.double
        guard let d = parsed else { throw error("expected a number, got \"\(node?.scalar ?? "?")\"") }
        if let range, !range.contains(d) { throw error("\(d) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return d
    }

    /// A duration like `30s`, `500ms`, `5m`, `1h` (a bare number is seconds).
    public func duration(default value: Duration) throws(ConfigError) -> Duration {
        guard isPresent else { return value }
        guard let text = try expandedScalar(), let d = DurationText.parse(text) else {
            throw error("expected a duration like 30s, 500ms, 5m or 1h, got \"\(node?.scalar ?? "?")\"")
        }
        return d
    }

    /// A map of string to string (labels).
    public func stringMap() throws(ConfigError) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in try entries() {
            guard v.node?.scalar != nil, let s = try v.expandedScalar() else { throw v.error("expected a string value") }
            out[k] = s
        }
        return out
    }

    /// Fails on the first key of this mapping that no reader asked for.
    /// Also fails when a section holds a plain value or a list instead of keys.
    public func rejectUnknownKeys() throws(ConfigError) {
        if isPresent, node?.mapping == nil { throw error("expected a mapping of keys") }
        guard let map = node?.mapping else { return }
        for entry in map where !consumed.contains(entry.key) {
            throw ConfigError(file: file, line: entry.keyLine, key: childPath(entry.key), message: "unknown key")
        }
    }
}

/// `${NAME}` and `${NAME:-default}` in config values.
enum EnvironmentExpansion {
    /// Letters, digits and `_`.
    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95
    }

    static func expand(_ text: String, environment: [String: String], at node: ConfigNode) throws(ConfigError) -> String {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.firstRange(of: "${") {
            let before = rest[..<start.lowerBound]
            if before.hasSuffix("$") {
                // `$${` is a literal `${`.
                out += before.dropLast()
                out += "${"
                rest = rest[start.upperBound...]
                continue
            }
            out += before
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                throw node.error("unterminated ${ in \"\(text.prefix(80))\"")
            }
            let inner = rest[start.upperBound..<close]
            var name = inner, fallback: Substring?
            if let sep = inner.firstRange(of: ":-") {
                name = inner[..<sep.lowerBound]
                fallback = inner[sep.upperBound...]
            }
            guard let first = name.utf8.first, !(48...57).contains(first), name.utf8.allSatisfy(Self.isNameByte) else {
                throw node.error("\"${\(inner.prefix(64))}\" is not an environment variable name (letters, digits, _)")
            }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                out += value
            } else if let fallback {
                out += fallback
            } else {
                throw node.error("environment variable \(name) is not set")
            }
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }
}

/// Keys a reader asked for. A reference so copies of a node share it.
final class ConsumedKeys: Sendable {
    private let keys = Mutex<Set<String>>([])
    func insert(_ key: String) { keys.withLock { _ = $0.insert(key) } }
    func contains(_ key: String) -> Bool { keys.withLock { $0.contains(key) } }
}

/// Durations as operators write them in config files.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        let t = text.trimmed()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let v = Double(number), v >= 0, v.isFinite else { return nil }
            return .milliseconds(Int64((v * scale * 1000).rounded()))
        }
        guard let v = Double(t), v >= 0, v.isFinite else { return nil }
        return .milliseconds(Int64((v * 1000).rounded()))
    }

    public static func format(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
