/// A TOML value as ``TOMLParser`` reads it. Tables keep their keys in file order: containerd tries the
/// `[host."…"]` entries of a `hosts.toml` in the order they are written.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    /// An offset or local date-time, date or time, as written.
    case dateTime(String)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var integer: Int? {
        if case .integer(let i) = self { return i }
        return nil
    }

    public var array: [TOMLValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var table: TOMLTable? {
        if case .table(let t) = self { return t }
        return nil
    }
}

/// Keys and values in file order; keys are unique.
public struct TOMLTable: Sendable, Equatable, Sequence {
    public private(set) var entries: [(key: String, value: TOMLValue)] = []

    public init() {}

    public subscript(key: String) -> TOMLValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: TOMLValue)]> { entries.makeIterator() }

    public static func == (a: TOMLTable, b: TOMLTable) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
