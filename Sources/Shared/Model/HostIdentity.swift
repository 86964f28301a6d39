/// Who a host is: its id (also its ZeroMQ routing id and its enrollment name) and free-form labels.
///
/// The labels `zone` and `egress` drive correlation: hosts behind one NAT share `egress`.
public struct HostIdentity: Codable, Sendable, Hashable {
    public var id: String
    public var labels: [String: String]

    public init(id: String, labels: [String: String] = [:]) {
        self.id = id
        self.labels = labels
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
    }

    public var zone: String? { labels["zone"] }
    public var egress: String? { labels["egress"] }
}

/// Rules for host ids. A host id is a ZeroMQ routing id and a file-name component, so it is kept to a
/// conservative alphabet: letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 63 bytes.
public enum HostID {
    public static let maxLength = 63

    public static func isValid(_ id: String) -> Bool {
        guard let first = id.utf8.first, id.utf8.count <= maxLength else { return false }
        guard isAlnum(first) else { return false }
        return id.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }
}
