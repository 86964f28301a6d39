import Foundation
import RegwatchShared

/// The rule that turns a host's preferred mirror pools and the outages in effect into the mirror order
/// its runtimes should use. Pure and separate from the controller so that it can be read and tested alone.
///
/// Only three kinds move anything:
/// - `endpoint_down` and `upstream_down_via_mirror` of a mirror: the mirror is dropped from that registry's
///   list (a firewalled mirror costs every pull a dial timeout, a mirror whose upstream is down serves
///   nothing), for every host, since the outage is fleet-wide by construction;
/// - `rate_limit_exhausted` of an egress: for the hosts behind that egress only, the registry's
///   `authenticated` mirrors move to the front (in their preferred order), the others keep their order.
/// `host_local`, `zone_network` (one host or one zone never moves the fleet), `auth_broken` (another
/// mirror does not fix rotated credentials), `dns_outage` and `cert_expiring` are ignored.
/// Entries are only ever dropped or reordered, never added, so every directive passes the agent's allowlist.
public enum MirrorOrder {
    /// Whether an outage of this kind changes mirror orders.
    public static func drivesFailover(_ kind: OutageKind) -> Bool {
        kind == .endpointDown || kind == .upstreamDownViaMirror || kind == .rateLimitExhausted
    }

    /// The pools' URLs in preferred order: what a host runs with when nothing is wrong.
    public static func preferred(_ pools: [String: [MirrorSpec]]) -> [String: [String]] {
        pools.mapValues { $0.map(\.url) }
    }

    /// The order for a host with `pools` behind `egress` while `outages` are in effect, and the outages
    /// that actually changed something for it (sorted), for the plan's reason.
    public static func desired(
        pools: [String: [MirrorSpec]], egress: String?, outages: some Sequence<OutageKey>
    ) -> (mirrors: [String: [String]], causes: [OutageKey]) {
        let keys = Array(outages).filter { drivesFailover($0.kind) }
        var causes = Set<OutageKey>()
        var result: [String: [String]] = [:]
        for (registry, pool) in pools {
            var kept: [MirrorSpec] = []
            for spec in pool {
                let down = keys.filter { key in
                    key.kind != .rateLimitExhausted && applies(key, registry: registry)
                        && key.endpoint.map { sameURL($0, spec.url) } == true
                }
                if down.isEmpty { kept.append(spec) } else { causes.formUnion(down) }
            }
            if let egress {
                let exhausted = keys.filter { key in
                    key.kind == .rateLimitExhausted && key.egress == egress && applies(key, registry: registry)
                }
                if !exhausted.isEmpty {
                    let reordered = kept.filter(\.authenticated) + kept.filter { !$0.authenticated }
                    if reordered != kept { causes.formUnion(exhausted) }
                    kept = reordered
                }
            }
            result[registry] = kept.map(\.url)
        }
        return (result, causes.sorted())
    }

    /// A key without a registry (not produced by the engine for these kinds, but harmless) applies to all.
    private static func applies(_ key: OutageKey, registry: String) -> Bool {
        key.registry == nil || key.registry == registry
    }

    /// URLs compare without trailing slashes: `https://m:5000/` in a config is `https://m:5000` probed.
    static func sameURL(_ a: String, _ b: String) -> Bool {
        trimmed(a) == trimmed(b)
    }

    private static func trimmed(_ s: String) -> Substring {
        var s = Substring(s)
        while s.hasSuffix("/") { s = s.dropLast() }
        return s
    }
}
