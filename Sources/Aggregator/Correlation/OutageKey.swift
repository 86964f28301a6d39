/// The identity of an outage: its kind plus the scope it is about. Two windows that find the same key
/// are the same outage, which is what lets the engine count consecutive windows and hold recoveries.
///
/// Only the fields of the kind's scope are set, the others are nil, so a key never changes because of
/// incidental data (a host joining the fleet does not turn an outage into a new one):
/// - `endpoint_down`, `upstream_down_via_mirror`, `dns_outage`, `auth_broken`: `registry` + `endpoint`
///   (the same mirror URL may serve several registries, and failover is decided per registry);
/// - `cert_expiring`: `endpoint` only (a certificate belongs to the URL, whatever registry is behind it);
/// - `zone_network`: `zone`; `host_local`: `host`;
/// - `rate_limit_exhausted`: `egress` + `registry` + `endpoint` (one NAT = one quota, per registry).
public struct OutageKey: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: OutageKind
    /// The endpoint URL as probed (`https://mirror-a:5000`).
    public var endpoint: String?
    /// The registry the endpoint serves (`docker.io`), for endpoint-scoped kinds.
    public var registry: String?
    public var zone: String?
    public var host: String?
    public var egress: String?

    public init(kind: OutageKind, endpoint: String? = nil, registry: String? = nil, zone: String? = nil, host: String? = nil, egress: String? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.registry = registry
        self.zone = zone
        self.host = host
        self.egress = egress
    }

    /// A total order so that detection and transitions come out in the same order every time.
    public static func < (lhs: OutageKey, rhs: OutageKey) -> Bool {
        lhs.sortFields.lexicographicallyPrecedes(rhs.sortFields)
    }

    private var sortFields: [String] {
        [kind.rawValue, registry ?? "", endpoint ?? "", zone ?? "", host ?? "", egress ?? ""]
    }

    /// The scope fields that are set, as `name=value` words (`registry=docker.io endpoint=https://m:5000`):
    /// the `scope` label of `regwatch_outage`.
    public var scope: String {
        [("registry", registry), ("endpoint", endpoint), ("zone", zone), ("host", host), ("egress", egress)]
            .compactMap { name, value in value.map { "\(name)=\($0)" } }
            .joined(separator: " ")
    }

    public var description: String { "\(kind.rawValue)(\(scope))" }
}
