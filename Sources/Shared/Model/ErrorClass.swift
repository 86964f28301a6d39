/// The fixed vocabulary of why a pull or probe failed, shared by probes, pull events, outages and metrics.
///
/// The raw values are part of the contract (docs/errors.md). Decoding an unfamiliar value yields `.unknown`
/// instead of failing, so an older aggregator still accepts reports from an agent that learned a new class.
public enum ErrorClass: String, Codable, Sendable, CaseIterable, Hashable {
    case ok
    case rateLimited = "rate_limited"
    case authFailed = "auth_failed"
    case accessDenied = "access_denied"
    case dnsNXDomain = "dns_nxdomain"
    case dnsFailure = "dns_failure"
    case tcpRefused = "tcp_refused"
    case tcpTimeout = "tcp_timeout"
    case networkUnreachable = "network_unreachable"
    case tlsHandshake = "tls_handshake"
    case tlsUntrusted = "tls_untrusted"
    case tlsExpired = "tls_expired"
    case tlsHostname = "tls_hostname"
    case proxyFailure = "proxy_failure"
    case notRegistry = "not_registry"
    case notFound = "not_found"
    case serverError = "server_error"
    case timeout
    case diskFull = "disk_full"
    case configInvalid = "config_invalid"
    case unknown

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = ErrorClass(rawValue: raw) ?? .unknown
    }

    /// Whether this class means the endpoint worked.
    public var isHealthy: Bool { self == .ok }
}
