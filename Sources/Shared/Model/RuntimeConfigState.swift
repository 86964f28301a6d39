/// The container runtimes whose mirror configuration regwatch reads and manages.
public enum RuntimeKind: String, Codable, Sendable, Hashable, CaseIterable {
    case docker, containerd, crio
}

/// What one runtime's mirror configuration says on this host, as read this cycle.
///
/// `hash` covers the mirror-relevant content so the aggregator sees drift without diffing files.
public struct RuntimeConfigState: Codable, Sendable, Hashable {
    public var runtime: RuntimeKind
    /// Mirrors per registry in the order the runtime tries them.
    public var mirrors: [String: [String]]
    public var valid: Bool
    public var detail: String
    public var hash: String

    public init(runtime: RuntimeKind, mirrors: [String: [String]], valid: Bool, detail: String = "", hash: String) {
        self.runtime = runtime
        self.mirrors = mirrors
        self.valid = valid
        self.detail = detail
        self.hash = hash
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        runtime = try c.decode(RuntimeKind.self, forKey: .runtime)
        mirrors = try c.decodeIfPresent([String: [String]].self, forKey: .mirrors) ?? [:]
        valid = try c.decode(Bool.self, forKey: .valid)
        detail = try c.decodeIfPresent(String.self, forKey: .detail) ?? ""
        hash = try c.decodeIfPresent(String.self, forKey: .hash) ?? ""
    }
}
