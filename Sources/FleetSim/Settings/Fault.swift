/// A scripted fault: what the emulated agents report once faults begin.
///
/// Written on the command line as `KIND[:KEY=VALUE]`: `mirror-down` (the first docker.io mirror fails for
/// every agent), `mirror-down:share=0.3`, `mirror-down:zone=zone-2`, `quota:egress=egress-7` (that egress
/// has no Docker Hub pulls left), `silent:share=0.05` (those agents stop reporting).
public struct Fault: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case mirrorDown = "mirror-down"
        case quota
        case silent
    }

    public enum Scope: Sendable, Equatable {
        case all
        /// A share of the fleet, chosen by host index so each run picks the same hosts.
        case share(Double)
        case zone(String)
        case egress(String)
    }

    public var kind: Kind
    public var scope: Scope

    public init(kind: Kind, scope: Scope) {
        self.kind = kind
        self.scope = scope
    }

    /// Parses `KIND[:KEY=VALUE]`; the error is one line naming what is wrong.
    public init(parsing text: String) throws(SimError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let kind = Kind(rawValue: first) else {
            throw .badArgument("--fault", "\"\(text)\": the kind must be one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.kind = kind
        guard parts.count == 2 else {
            guard kind != .quota else { throw .badArgument("--fault", "\"\(text)\": quota needs egress=NAME") }
            scope = .all
            return
        }
        let kv = parts[1].split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, !kv[1].isEmpty else { throw .badArgument("--fault", "\"\(text)\": expected KEY=VALUE after the kind") }
        switch kv[0] {
        case "share":
            guard let share = Double(kv[1]), share > 0, share <= 1 else {
                throw .badArgument("--fault", "\"\(text)\": share must be a number in (0, 1]")
            }
            scope = .share(share)
        case "zone": scope = .zone(kv[1])
        case "egress": scope = .egress(kv[1])
        default: throw .badArgument("--fault", "\"\(text)\": the scope must be share=, zone= or egress=")
        }
        if kind == .quota, case .egress = scope {} else if kind == .quota {
            throw .badArgument("--fault", "\"\(text)\": quota needs egress=NAME")
        }
    }

    /// Whether the fault touches the agent with this index and labels.
    public func applies(index: Int, labels: [String: String]) -> Bool {
        switch scope {
        case .all: true
        // A fixed hash of the index, so a share is spread over every zone and egress and is the same each run.
        case .share(let share): Double((UInt64(index) &* 0x9E37_79B9_7F4A_7C15) >> 11) / Double(1 << 53) < share
        case .zone(let zone): labels["zone"] == zone
        case .egress(let egress): labels["egress"] == egress
        }
    }

    public var description: String {
        switch scope {
        case .all: kind.rawValue
        case .share(let s): "\(kind.rawValue):share=\(s)"
        case .zone(let z): "\(kind.rawValue):zone=\(z)"
        case .egress(let e): "\(kind.rawValue):egress=\(e)"
        }
    }
}
