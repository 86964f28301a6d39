/// Resolves names for the probe engine. The real one is getaddrinfo, as the runtimes resolve
/// (``DNSResolver``); tests answer NXDOMAIN, a failing resolver or silence without a DNS server.
public protocol NameResolver: Sendable {
    /// How long a lookup may take before it counts as no answer.
    var timeout: Duration { get }
    func resolve(_ host: String) async -> (DNSResolver.Outcome, latencyMs: Double)
}

extension DNSResolver: NameResolver {}
