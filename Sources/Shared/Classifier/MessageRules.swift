/// The ordered rules behind ``ErrorClassifier/classify(message:)``. Patterns are lowercase substrings;
/// a rule matches when all of its `all` substrings occur and, if given, at least one of its `any`.
public enum MessageRules {
    public struct Rule: Sendable {
        public var errorClass: ErrorClass
        public var any: [String]
        public var all: [String]

        init(_ errorClass: ErrorClass, any: [String] = [], all: [String] = []) {
            self.errorClass = errorClass
            self.any = any
            self.all = all
        }

        func matches(_ lowercased: String) -> Bool {
            all.allSatisfy { lowercased.contains($0) } && (any.isEmpty || any.contains { lowercased.contains($0) })
        }
    }

    /// Root causes first, wrappers last. Tests/SharedTests/Fixtures/classifier/catalogue.tsv holds every string they are tested against.
    public static let table: [Rule] = [
        // The host itself.
        Rule(.diskFull, any: ["no space left on device", "disk quota exceeded"]),
        // A proxy between the host and the registry (Go: proxyconnect; curl: CONNECT tunnel / 407).
        Rule(.proxyFailure, any: ["proxyconnect", "proxy authentication required", "connect tunnel failed",
                                  "from proxy after connect", "could not resolve proxy", "proxy error"]),
        // Quota: checked early because it arrives wrapped in many layers and is never a symptom of another cause.
        Rule(.rateLimited, any: ["toomanyrequests", "too many requests", "rate exceeded", "pull rate limit",
                                 "status code 429", "status: 429", "code 429"]),
        // Name resolution, including a resolver that times out (before the generic i/o timeout below).
        Rule(.dnsNXDomain, any: ["no such host", "nxdomain", "name or service not known"]),
        Rule(.dnsFailure, any: ["server misbehaving", "temporary failure in name resolution", "could not resolve host",
                                "no address associated with hostname", "name resolution failed"]),
        Rule(.dnsFailure, all: ["lookup ", ":53", "i/o timeout"]),
        // TLS, most specific first.
        Rule(.tlsExpired, any: ["certificate has expired", "certificate expired", "expired or is not yet valid"]),
        Rule(.tlsHostname, any: ["certificate is valid for", "certificate is not valid for any names",
                                 "doesn't match target host name", "does not match target host name",
                                 "no alternative certificate subject name matches"]),
        Rule(.tlsUntrusted, any: ["certificate signed by unknown authority", "self-signed certificate", "self signed certificate",
                                  "unable to get local issuer certificate", "certificate verify failed",
                                  "x509: certificate is not trusted", "failed to verify certificate"]),
        Rule(.tlsHandshake, any: ["tls handshake timeout", "tls: handshake failure", "first record does not look like a tls handshake",
                                  "remote error: tls", "ssl connect error", "wrong version number", "tls: "]),
        // TCP.
        Rule(.tcpRefused, any: ["connection refused", "couldn't connect to server", "failed to connect to"]),
        Rule(.networkUnreachable, any: ["network is unreachable", "no route to host", "host is unreachable"]),
        Rule(.tcpTimeout, all: ["dial tcp", "i/o timeout"]),
        Rule(.tcpTimeout, any: ["connect: connection timed out", "connection timed out after", "dial tcp: timeout"]),
        Rule(.tcpRefused, any: ["connection reset by peer"]),
        // Credentials and permissions.
        Rule(.accessDenied, any: ["pull access denied", "requested access to the resource is denied", "denied:", "403 forbidden",
                                  "insufficient_scope"]),
        Rule(.authFailed, any: ["unauthorized", "no basic auth credentials", "failed to authorize", "authentication required",
                                "incorrect username or password", "401 unauthorized", "status: 401", "status code 401",
                                "code = unauthenticated"]),
        // The answer is not what a registry says.
        Rule(.notRegistry, any: ["invalid character '<' looking for beginning of value", "unexpected content-type text/html",
                                 "does not look like a registry"]),
        // Missing content.
        Rule(.notFound, any: ["manifest unknown", "name unknown", "no matching manifest for", "not found", "code = notfound"]),
        // The registry failed.
        Rule(.serverError, any: ["500 internal server error", "502 bad gateway", "503 service unavailable", "504 gateway timeout",
                                 "unexpected http status: 5", "status code 5", "code = unavailable"]),
        // Gave up waiting: the wrapper of last resort.
        Rule(.timeout, any: ["client.timeout exceeded", "context deadline exceeded", "deadlineexceeded", "because of no progress",
                             "i/o timeout", "timed out", "timeout"]),
    ]
}
