import FoundationEssentials
import Synchronization

/// One HTTP request the probe engine hands to libcurl.
public struct CurlRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", head = "HEAD" }

    public var url: String
    public var method: Method = .get
    public var headers: [String] = []
    /// `host:port:address` entries pinning name resolution (the engine resolves names itself to tell
    /// NXDOMAIN from other DNS failures, then makes curl use that answer).
    public var resolve: [String] = []
    public var connectTimeoutMs: Int = 5_000
    public var timeoutMs: Int = 10_000
    /// Basic credentials (`user:password`), when the registry wants them.
    public var basicAuth: String?
    /// Verify the certificate chain and host name, as a runtime does. With verification off the
    /// certificate is still read (expiry, names), which is how an untrusted one is described.
    public var verify: Bool = true
    /// CA bundle to verify the server against instead of the system's (a private registry's CA).
    public var caFile: String?
    /// The proxy for this request (a runtime's, found by discovery; "" for none); nil: curl reads
    /// `HTTPS_PROXY` and friends from the environment. `noProxy` as in `NO_PROXY`.
    public var proxy: String?
    public var noProxy: String?
    /// Connect over a unix socket (dockerd's API) instead of TCP.
    public var unixSocket: String?
    /// Largest body kept; the rest is discarded (registries answer small JSON documents).
    public var maxBody: Int = 64 << 10
    /// A response read as it streams (Docker's `/events`) instead of kept: the transfer ends when the
    /// server closes it or the stream is cancelled. Set `timeoutMs` to 0 for no overall timeout.
    public var stream: CurlStream?

    public init(url: String, method: Method = .get) {
        self.url = url
        self.method = method
    }
}

/// What came back, including failures below HTTP (curl's result code, the OS errno) and TLS facts read
/// even when the chain is not trusted.
public struct CurlResponse: Sendable {
    public var curlCode: Int32 = 0
    public var curlMessage: String = ""
    public var osErrno: Int32 = 0
    public var status: Int = 0
    /// Header names lowercased; the last value wins.
    public var headers: [String: String] = [:]
    public var body: [UInt8] = []
    /// Cumulative phase times in milliseconds, as curl measures them.
    public var nameLookupMs: Double = 0
    public var connectMs: Double = 0
    public var tlsMs: Double = 0
    public var ttfbMs: Double = 0
    public var totalMs: Double = 0
    /// The leaf certificate's fields from `CURLINFO_CERTINFO` ("Expire date", "X509v3 Subject Alternative Name", …).
    public var leafCertificate: [String: String] = [:]
    public var primaryIP: String = ""
    /// The port of the last connection attempt: not the target's when a proxy was in the way.
    public var primaryPort: Int = 0

    public var succeeded: Bool { curlCode == 0 }
}

/// Receives a streaming response on the transfer thread: the status once the headers are in, then each
/// piece of the body as it arrives.
public final class CurlStream: Sendable {
    let onHeaders: @Sendable (_ status: Int) -> Void
    let onData: @Sendable ([UInt8]) -> Void
    private let cancelled = Atomic<Bool>(false)

    public init(onHeaders: @escaping @Sendable (_ status: Int) -> Void, onData: @escaping @Sendable ([UInt8]) -> Void) {
        self.onHeaders = onHeaders
        self.onData = onData
    }

    /// Ends the transfer within about a second (libcurl's progress callback), even on an idle stream.
    public func cancel() { cancelled.store(true, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}
