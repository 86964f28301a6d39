import FoundationEssentials
import RegwatchShared

/// Decides whether this agent may act on a failover command, before anything is written.
///
/// A push channel that rewrites where every host pulls images from is the most valuable target in the
/// system, so every check runs locally and none trusts the sender: the Ed25519 signature against the
/// pinned signing key, the addressee, the generation (strictly greater than the one applied, which is
/// persisted: replays and older commands are refused), the validity window, and the local policy
/// (every mirror in this host's own allowlist for that registry, `https` unless the local config marks
/// that mirror insecure, no TLS-verification opt-outs, registry names that cannot leave `certsDir`).
/// Pure: the caller passes the applied generation and the time.
public struct CommandGate: Sendable {
    public enum Decision: Sendable, Equatable {
        /// Every check passed: apply it.
        case accept(FailoverDirective)
        /// Already applied (same generation): nothing to do, acknowledged as `ignored`.
        case ignore(generation: UInt64, reason: String)
        /// The applied generation again, from a newer leadership term: nothing to apply, but the term is
        /// kept so the deposed leader's commands are refused from now on.
        case confirm(CommandVersion)
        /// Refused; `generation` when the command could be read that far.
        case reject(generation: UInt64?, reason: String)
    }

    /// Largest payload accepted (base64 of the signed JSON): far above any real directive.
    public static let maxPayloadBytes = 64 * 1024
    /// Most mirrors per registry, and registries per command.
    public static let maxMirrors = 16
    public static let maxRegistries = 64
    /// Clock skew tolerated on `issuedAt`.
    public static let maxSkew: TimeInterval = 300

    let verifier: CommandVerifier?
    let hostID: String
    /// Allowlist per registry name: mirror URL (normalised) -> may be insecure.
    let allowlist: [String: [String: Bool]]

    public init(verifier: CommandVerifier?, config: AgentConfig) {
        self.init(verifier: verifier, hostID: config.host.id, mirrorPools: Dictionary(config.registries.map { ($0.name, $0.mirrors) }, uniquingKeysWith: { _, last in last }))
    }

    /// - Parameter mirrorPools: the host's allowlist, per registry name (what its reports carry).
    public init(verifier: CommandVerifier?, hostID: String, mirrorPools: [String: [MirrorSpec]]) {
        self.verifier = verifier
        self.hostID = hostID
        allowlist = mirrorPools.mapValues { mirrors in
            Dictionary(mirrors.map { (Self.normalise($0.url), $0.insecure) }, uniquingKeysWith: { a, b in a || b })
        }
    }

    public func evaluate(_ command: SignedFailoverCommand, applied: CommandVersion, now: Date) -> Decision {
        guard command.payload.utf8.count <= Self.maxPayloadBytes, command.signature.utf8.count <= 512 else {
            return .reject(generation: nil, reason: "oversize: payload over \(Self.maxPayloadBytes) bytes")
        }
        guard let verifier else {
            return .reject(generation: nil, reason: "no signing key pinned (aggregator.signingKey): failover commands are refused")
        }
        let directive: FailoverDirective
        do {
            directive = try verifier.verify(command)
        } catch {
            return .reject(generation: nil, reason: error.description)
        }
        let g = directive.generation
        guard directive.target == hostID else {
            return .reject(generation: g, reason: "addressed to \(directive.target.prefix(64)), not to this host (\(hostID))")
        }
        guard directive.epoch >= applied.epoch else {
            return .reject(generation: g, reason: "epoch \(directive.epoch) is older than the applied \(applied) (a deposed aggregator's command)")
        }
        if g == applied.generation {
            if directive.epoch > applied.epoch { return .confirm(CommandVersion(epoch: directive.epoch, generation: g)) }
            return .ignore(generation: g, reason: "generation \(g) is already applied")
        }
        guard g > applied.generation else {
            return .reject(generation: g, reason: "generation \(g) is older than the applied \(applied.generation) (replayed or out of order)")
        }
        guard directive.expiresAt > now else {
            return .reject(generation: g, reason: "expired at \(RFC3339.format(directive.expiresAt))")
        }
        guard directive.issuedAt <= now.addingTimeInterval(Self.maxSkew), directive.issuedAt < directive.expiresAt else {
            return .reject(generation: g, reason: "issued in the future (\(RFC3339.format(directive.issuedAt)))")
        }
        guard directive.mirrors.count <= Self.maxRegistries else {
            return .reject(generation: g, reason: "oversize: \(directive.mirrors.count) registries")
        }
        for (registry, mirrors) in directive.mirrors.sorted(by: { $0.key < $1.key }) {
            if let problem = policyViolation(registry: registry, mirrors: mirrors) {
                return .reject(generation: g, reason: problem)
            }
        }
        return .accept(directive)
    }

    /// The first local-policy problem with one registry's mirror list, or nil.
    func policyViolation(registry: String, mirrors: [String]) -> String? {
        // The name becomes a directory under certsDir and a key in registries.conf: it must stay a host[:port].
        guard RegistryName.isValid(registry), !registry.contains("/"), !registry.contains("\\") else {
            return "registry name \"\(registry.prefix(80))\" is not a host[:port] (it could leave certsDir)"
        }
        guard let allowed = allowlist[registry] else {
            return "registry \(registry) is not configured on this host"
        }
        guard mirrors.count <= Self.maxMirrors else { return "oversize: \(mirrors.count) mirrors for \(registry)" }
        guard Set(mirrors.map(Self.normalise)).count == mirrors.count else { return "duplicate mirror for \(registry)" }
        for url in mirrors {
            guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), parsed.host != nil else {
                return "mirror \"\(url.prefix(120))\" is not a URL"
            }
            guard parsed.query == nil, parsed.fragment == nil, parsed.user == nil, parsed.password == nil else {
                return "mirror \(url.prefix(120)) carries a query, fragment or credentials (skip_verify and the like are not accepted)"
            }
            guard let insecureAllowed = allowed[Self.normalise(url)] else {
                return "mirror \(url.prefix(120)) is not in this host's allowlist for \(registry)"
            }
            if scheme != "https" && !insecureAllowed {
                return "mirror \(url.prefix(120)) is not https and is not marked insecure in this host's config"
            }
            guard scheme == "https" || scheme == "http" else { return "mirror \(url.prefix(120)) has scheme \(scheme)" }
        }
        return nil
    }

    /// Mirror URLs compare without a trailing slash and with a lower-case scheme and host.
    static func normalise(_ url: String) -> String {
        var s = url
        while s.hasSuffix("/") { s.removeLast() }
        guard let schemeEnd = s.firstRange(of: "://") else { return s }
        let rest = s[schemeEnd.upperBound...]
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        return s[..<schemeEnd.upperBound].lowercased() + rest[..<hostEnd].lowercased() + rest[hostEnd...]
    }
}
