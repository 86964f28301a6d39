import FoundationEssentials
import RegwatchShared

/// The verdict of `diagnose`: which question of the operator's flowchart fails first, for the pull path
/// a runtime would take (its mirrors in order, then the upstream), with the evidence and the next step.
///
/// A pure function of the probe results, so every verdict is testable without a network.
public struct Diagnosis: Sendable, Encodable {
    public struct Step: Sendable, Encodable, Equatable {
        public var endpoint: String
        public var role: String
        public var check: String
        public var `class`: String
        public var detail: String
        /// Cumulative milliseconds per phase, as the probe measured them.
        public var phases = PhaseTimings()
    }

    public struct Verdict: Sendable, Encodable, Equatable {
        public var `class`: String
        public var summary: String
        public var next: String
    }

    public var image: String
    public var registry: String
    public var steps: [Step]
    public var verdict: Verdict
    public var healthy: Bool { verdict.class == ErrorClass.ok.rawValue }

    /// What `diagnose` found on the host when it ran without a config file.
    public var discovery: HostDiscovery?

    enum CodingKeys: String, CodingKey { case image, registry, steps, verdict, discovery }

    /// The flowchart's order: the first question with a failing answer is the verdict.
    static let priority: [ErrorClass] = [
        .rateLimited, .authFailed, .accessDenied, .dnsNXDomain, .dnsFailure, .proxyFailure, .tcpTimeout, .tcpRefused,
        .networkUnreachable, .tlsExpired, .tlsUntrusted, .tlsHostname, .tlsHandshake, .notRegistry, .serverError,
        .timeout, .notFound, .diskFull, .configInvalid, .unknown,
    ]

    static func check(for cls: ErrorClass) -> String {
        switch cls {
        case .rateLimited: "rate_limit"
        case .authFailed, .accessDenied: "auth"
        case .dnsNXDomain, .dnsFailure: "dns"
        case .tcpRefused, .tcpTimeout, .networkUnreachable: "tcp"
        case .proxyFailure: "proxy"
        case .tlsHandshake, .tlsUntrusted, .tlsExpired, .tlsHostname: "tls"
        case .notRegistry, .serverError: "registry"
        case .ok, .notFound: "manifest"
        case .timeout: "timeout"
        case .diskFull, .configInvalid, .unknown: "other"
        }
    }

    /// `path`: probe results in the order the runtime tries the endpoints (mirrors, then upstream).
    public static func evaluate(image: ImageReference, path: [ProbeResult]) -> Diagnosis {
        let steps = path.map { r in
            Step(endpoint: r.endpoint.url, role: r.endpoint.role.rawValue, check: check(for: r.errorClass), class: r.errorClass.rawValue, detail: r.detail, phases: r.phases)
        }
        let served = path.firstIndex { $0.errorClass == .ok }
        let failing = path.enumerated().filter { $0.element.errorClass != .ok && (served == nil || $0.offset < served!) }
        guard let worst = failing.min(by: { rank($0.element.errorClass) < rank($1.element.errorClass) }) else {
            let via = served.map { path[$0].endpoint.url } ?? "nothing"
            return Diagnosis(image: image.description, registry: image.registry, steps: steps, verdict: Verdict(
                class: ErrorClass.ok.rawValue, summary: path.isEmpty ? "no endpoints to try" : "\(image) pulls from \(via)", next: "nothing to do"
            ))
        }
        let r = worst.element
        let fallback = served.map { path[$0] }
        var summary = "\(r.endpoint.role.rawValue) \(r.endpoint.url): \(r.errorClass.rawValue) (\(r.detail))"
        if let fallback {
            summary += "; pulls fall through to \(fallback.endpoint.url)" + (r.errorClass == .tcpTimeout ? " after a dial timeout" : "")
        } else {
            summary += "; no endpoint serves \(image): pulls fail"
        }
        return Diagnosis(image: image.description, registry: image.registry, steps: steps, verdict: Verdict(
            class: r.errorClass.rawValue, summary: summary, next: nextStep(for: r, image: image, fallback: fallback)
        ))
    }

    static func rank(_ c: ErrorClass) -> Int { priority.firstIndex(of: c) ?? priority.count }

    static func nextStep(for r: ProbeResult, image: ImageReference, fallback: ProbeResult?) -> String {
        let url = r.endpoint.url
        let host = URL(string: url)?.host ?? url
        let port = URL(string: url).map { $0.port ?? ($0.scheme == "https" ? 443 : 80) } ?? 0
        let mirror = r.endpoint.role == .mirror
        switch r.errorClass {
        case .rateLimited:
            let quota = r.rateLimit.map { " (\($0.remaining)/\($0.limit) left per \($0.windowSeconds / 3600) h for \($0.source ?? "this egress IP"))" } ?? ""
            return "the pull quota is exhausted\(quota): authenticate pulls with an account, or put an authenticated pull-through mirror first for this egress group"
        case .authFailed:
            return "credentials for \(r.endpoint.registry) are refused by \(url): check the credentials file (rotated password or token?) and `docker login \(host)`"
        case .accessDenied:
            return "the account has no pull access to \(image.repository) on \(url): grant it, or check the repository name"
        case .dnsNXDomain:
            return "\(host) does not exist in DNS (NXDOMAIN): fix the name in the runtime's mirror configuration or add the record"
        case .dnsFailure:
            return "the resolver fails for \(host): check /etc/resolv.conf and that its DNS servers answer"
        case .proxyFailure:
            return "the HTTP proxy fails: check HTTPS_PROXY/NO_PROXY for the runtime and that the proxy is up"
        case .tcpTimeout:
            return "\(url) drops TCP \(port) (firewall or dead host): open the port or remove the \(mirror ? "mirror" : "endpoint")"
                + (mirror ? "; until then every pull waits for a dial timeout before falling through" : "")
        case .tcpRefused:
            return "nothing listens on \(host):\(port): start the registry or fix the port" + (mirror ? ", or remove the mirror" : "")
        case .networkUnreachable:
            return "no route to \(host): check this host's routes and egress"
        case .tlsExpired:
            return "the certificate of \(url) has expired: renew it"
        case .tlsUntrusted:
            return "the certificate of \(url) is not trusted here: install its CA as /etc/docker/certs.d/\(host):\(port)/ca.crt (containerd: `ca` in hosts.toml), or mark the mirror insecure"
        case .tlsHostname:
            return "the certificate of \(url) does not name \(host): reissue it with \(host) in subjectAltName or use the name it has"
        case .tlsHandshake:
            return "the TLS handshake with \(url) fails: is it plain http on an https URL, or a TLS-intercepting proxy?"
        case .notRegistry:
            return "\(url) is not a registry (a captive portal, a load-balancer page or the wrong port): fix the URL"
        case .serverError:
            return "\(url) answers 5xx: the registry is failing; check its logs and storage"
        case .timeout:
            return "\(url) answers too slowly: check its load and the network path"
        case .notFound:
            if mirror, fallback?.endpoint.role == .upstream {
                return "\(image.repository):\(image.reference) is missing on mirror \(url) but the upstream has it: the mirror's own upstream may be down"
            }
            return "\(image.repository):\(image.reference) does not exist on \(url): check the name and tag"
        case .diskFull: return "free disk space on this host"
        case .configInvalid: return "fix the configuration: \(r.detail)"
        case .ok, .unknown: return "look at the evidence per step"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(image, forKey: .image)
        try c.encode(registry, forKey: .registry)
        try c.encode(steps, forKey: .steps)
        try c.encode(verdict, forKey: .verdict)
        try c.encodeIfPresent(discovery, forKey: .discovery)
    }
}
