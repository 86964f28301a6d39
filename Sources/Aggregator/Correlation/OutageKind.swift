/// What kind of outage correlation recognised. The raw values are contract (docs/correlation.md): they
/// are stored in the `outage` table, served by `/api/v1/outages` and used as the `kind` label of
/// `regwatch_outage_active`, so a case may be added but never renamed.
///
/// The kinds differ in what they call for, which is why correlation must tell them apart rather than
/// report "endpoint failing": `endpoint_down` and `upstream_down_via_mirror` justify a failover,
/// `rate_limit_exhausted` one for a single egress group, `auth_broken` and `dns_outage` need a human
/// (failover does not fix rotated credentials), `zone_network` and `host_local` are the fleet's own network
/// and must never move the fleet, and `cert_expiring` is a warning before anything fails.
public enum OutageKind: String, Codable, Sendable, CaseIterable, Hashable, Comparable {
    /// A registry or mirror fails from a quorum of hosts in several zones that reach other endpoints.
    case endpointDown = "endpoint_down"
    /// A mirror answers `/v2/` but its probe-image manifest fails fleet-wide: its upstream is down.
    case upstreamDownViaMirror = "upstream_down_via_mirror"
    /// Most hosts of one zone fail most endpoints while other zones reach them.
    case zoneNetwork = "zone_network"
    /// One host fails most of its endpoints while its peers reach them: the host is flagged, nothing moves.
    case hostLocal = "host_local"
    /// An egress group's pull quota is gone (`rate_limited`, or remaining under the threshold).
    case rateLimitExhausted = "rate_limit_exhausted"
    /// Authentication fails fleet-wide for an endpoint: credentials rotated or revoked.
    case authBroken = "auth_broken"
    /// One name fails resolution from many hosts that resolve other names.
    case dnsOutage = "dns_outage"
    /// An endpoint's certificate expires (or expired) within the warning window.
    case certExpiring = "cert_expiring"

    public static func < (lhs: OutageKind, rhs: OutageKind) -> Bool { lhs.rawValue < rhs.rawValue }
}
