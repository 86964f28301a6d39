import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Synchronization
import Testing

/// An ``HTTPTransport`` that answers from a script, by URL prefix, and records what was asked.
final class ScriptedTransport: HTTPTransport {
    let script: [(prefix: String, response: CurlResponse)]
    let asked = Mutex<[CurlRequest]>([])

    init(_ script: [(String, CurlResponse)]) {
        self.script = script.map { (prefix: $0.0, response: $0.1) }
    }

    func perform(_ request: CurlRequest) async -> CurlResponse {
        asked.withLock { $0.append(request) }
        return script.first { request.url.hasPrefix($0.prefix) }?.response
            ?? CurlResponse(curlCode: 7, curlMessage: "Failed to connect: not in the script", osErrno: ECONNREFUSED)
    }

    var urls: [String] { asked.withLock { $0.map(\.url) } }
}

/// A ``NameResolver`` with a fixed answer.
struct FixedResolver: NameResolver {
    let outcome: DNSResolver.Outcome
    var timeout: Duration = .seconds(5)
    func resolve(_ host: String) async -> (DNSResolver.Outcome, latencyMs: Double) { (outcome, 1.5) }
}

func http(_ status: Int, _ headers: [String: String] = [:], body: String = "") -> CurlResponse {
    CurlResponse(status: status, headers: headers, body: Array(body.utf8), connectMs: 1, ttfbMs: 2, totalMs: 3)
}

let hubHeaders = ["ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600", "docker-ratelimit-source": "203.0.113.7"]
let bearer = ["www-authenticate": #"Bearer realm="https://auth.test/token",service="registry.test""#, "docker-distribution-api-version": "registry/2.0"]

@Suite("Probe steps without sockets")
struct ProbeStepsTests {
    let target = ProbeTarget(endpoint: Endpoint(registry: "docker.io", url: "https://registry.test", role: .upstream),
                             probeRepository: "library/alpine", probeTag: "3.20", readsRateLimit: true)

    func probe(_ script: [(String, CurlResponse)], dns: DNSResolver.Outcome = .addresses(["192.0.2.10"]), target: ProbeTarget? = nil) async -> (ProbeResult, ScriptedTransport) {
        let transport = ScriptedTransport(script)
        let prober = RegistryProber(runner: transport, resolver: FixedResolver(outcome: dns))
        return (await prober.probe(target ?? self.target), transport)
    }

    // MARK: DNS

    @Test("DNS: NXDOMAIN, a failing resolver and no answer stop before any transfer")
    func dns() async {
        for (outcome, cls) in [(DNSResolver.Outcome.nxdomain("no such host"), ErrorClass.dnsNXDomain), (.failure("SERVFAIL"), .dnsFailure), (.timeout, .dnsFailure)] {
            let (r, t) = await probe([], dns: outcome)
            #expect(r.errorClass == cls, "\(outcome)")
            #expect(t.urls.isEmpty)
            #expect(r.phases.dnsMs == 1.5)
        }
        #expect(ProbeSteps.resolution(.timeout, host: "h", timeout: .seconds(2)) == .failure(.init(.dnsFailure, "lookup h: no answer within 2.0 seconds")))
        #expect(ProbeSteps.resolution(.addresses(["192.0.2.1", "192.0.2.2"]), host: "h", timeout: .seconds(2)) == .success("192.0.2.1"))
    }

    @Test("the resolved address is pinned for the transfers, as the runtime would connect")
    func pinned() async {
        let (_, t) = await probe([("https://registry.test/v2/", http(200, ["docker-distribution-api-version": "registry/2.0"]))])
        #expect(t.asked.withLock { $0.first?.resolve } == ["registry.test:443:192.0.2.10"])
    }

    // MARK: TCP, TLS, /v2/

    @Test("transport failures at /v2/: refused, unreachable, connect timeout, TLS handshake, a proxy on another port")
    func transport() {
        func failure(_ code: Int32, errno: Int32 = 0, message: String = "boom", connectMs: Double = 0, tlsMs: Double = 0, port: Int = 0) -> CurlResponse {
            CurlResponse(curlCode: code, curlMessage: message, osErrno: errno, connectMs: connectMs, tlsMs: tlsMs, primaryPort: port)
        }
        let cases: [(CurlResponse, ErrorClass)] = [
            (failure(7, errno: ECONNREFUSED), .tcpRefused),
            (failure(7, errno: ENETUNREACH), .networkUnreachable),
            (failure(28), .tcpTimeout),
            (failure(28, connectMs: 3), .tlsHandshake),
            (failure(35), .tlsHandshake),
            (failure(7, errno: ECONNREFUSED, port: 3128), .proxyFailure),
        ]
        for (response, cls) in cases {
            guard case .stop(let got, let detail) = ProbeSteps.registryAnswer(response, https: true, port: 443, address: "192.0.2.10") else {
                Issue.record("\(response.curlCode) went on"); continue
            }
            #expect(got == cls, "curl \(response.curlCode) errno \(response.osErrno) port \(response.primaryPort)")
            #expect(detail.contains("192.0.2.10:443"))
        }
    }

    @Test("/v2/ answers: 200 and 401 with a challenge go on; 5xx, a web page, 401 without a registry header do not")
    func registryAnswers() {
        func verdict(_ r: CurlResponse) -> ProbeSteps.Verdict { ProbeSteps.registryAnswer(r, https: true, port: 443, address: "a") }
        #expect(verdict(http(200, ["docker-distribution-api-version": "registry/2.0"])) == .proceed)
        #expect(verdict(http(200, [:], body: "{}")) == .proceed)
        #expect(verdict(http(401, bearer)) == .proceed)
        guard case .stop(.serverError, _) = verdict(http(503)) else { Issue.record("503"); return }
        guard case .stop(.notRegistry, let page) = verdict(http(200, ["content-type": "text/html"], body: "<html>captive</html>")) else { Issue.record("html"); return }
        #expect(page.contains("text/html"))
        guard case .stop(.notRegistry, _) = verdict(http(401, ["content-type": "text/plain"])) else { Issue.record("401 bare"); return }
        guard case .stop(.notRegistry, _) = verdict(http(404, ["content-type": "text/html"])) else { Issue.record("404"); return }
    }

    @Test("a 429 at /v2/ is rate_limited and its quota headers are the headroom (the egress' quota is counted)")
    func rateLimitedAtV2() async {
        let (r, t) = await probe([("https://registry.test/v2/", http(429, hubHeaders))])
        #expect(r.errorClass == .rateLimited)
        #expect(r.rateLimit == RateLimitState(limit: 100, remaining: 0, windowSeconds: 21_600, source: "203.0.113.7"))
        #expect(r.detail == "GET /v2/ answered 429 (0 of 100 pulls left, source 203.0.113.7)")
        #expect(t.urls == ["https://registry.test/v2/"])
        // Without quota headers: still rate_limited, no headroom invented.
        let (bare, _) = await probe([("https://registry.test/v2/", http(429))])
        #expect(bare.errorClass == .rateLimited && bare.rateLimit == nil && bare.detail == "GET /v2/ answered 429")
        // A registry not marked rateLimit: the class, not the figure.
        var quiet = target
        quiet.readsRateLimit = false
        let (other, _) = await probe([("https://registry.test/v2/", http(429, hubHeaders))], target: quiet)
        #expect(other.errorClass == .rateLimited && other.rateLimit == nil)
    }

    // MARK: Auth

    @Test("a 429 at the token endpoint is rate_limited, with the headroom that response carries")
    func rateLimitedAtToken() async {
        let (r, t) = await probe([
            ("https://registry.test/v2/", http(401, bearer)),
            ("https://auth.test/token", http(429, hubHeaders)),
        ])
        #expect(r.errorClass == .rateLimited)
        #expect(r.rateLimit?.remaining == 0 && r.rateLimit?.source == "203.0.113.7")
        #expect(r.detail.hasPrefix("token endpoint https://auth.test/token answered 429"))
        #expect(t.urls.count == 2)
        #expect(t.urls[1].contains("scope=repository:library/alpine:pull") && t.urls[1].contains("service=registry.test"))
    }

    @Test("token endpoint: 401 is auth_failed (saying no credentials are configured), 403 access_denied, no token in the body auth_failed")
    func tokenAnswers() {
        func stop(_ r: CurlResponse, creds: Bool) -> ProbeSteps.Stop? {
            if case .failure(let s) = ProbeSteps.tokenAnswer(r, realm: "https://auth.test/token", hasCredentials: creds) { return s }
            return nil
        }
        #expect(stop(http(401), creds: false) == .init(.authFailed, "token endpoint https://auth.test/token answered 401 (no credentials configured)"))
        #expect(stop(http(403), creds: true)?.errorClass == .accessDenied)
        #expect(stop(http(200, [:], body: "{}"), creds: true) == .init(.authFailed, "token endpoint https://auth.test/token sent no token"))
        #expect(ProbeSteps.tokenAnswer(http(200, [:], body: #"{"access_token":"abc"}"#), realm: "r", hasCredentials: false) == .success("abc"))
    }

    @Test("basic auth: no credentials configured is auth_failed before any manifest request")
    func basicWithoutCredentials() async {
        let (r, t) = await probe([("https://registry.test/v2/", http(401, ["www-authenticate": #"Basic realm="r""#]))])
        #expect(r.errorClass == .authFailed)
        #expect(t.urls == ["https://registry.test/v2/"])
    }

    // MARK: Manifest and quota

    @Test("the full path: challenge, token, manifest HEAD with the bearer token; headroom and digest from the manifest")
    func fullPath() async {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let (r, t) = await probe([
            ("https://registry.test/v2/library/alpine/manifests/3.20", http(200, hubHeaders.merging(["docker-content-digest": digest, "ratelimit-remaining": "76;w=21600"]) { $1 })),
            ("https://registry.test/v2/", http(401, bearer)),
            ("https://auth.test/token", http(200, [:], body: #"{"token":"t0k"}"#)),
        ])
        #expect(r.errorClass == .ok)
        #expect(r.rateLimit == RateLimitState(limit: 100, remaining: 76, windowSeconds: 21_600, source: "203.0.113.7"))
        #expect(r.manifest == ManifestState(reference: "library/alpine:3.20", status: 200, digest: digest))
        let head = t.asked.withLock { $0.last }
        #expect(head?.method == .head)
        #expect(head?.headers.contains("Authorization: Bearer t0k") == true)
        #expect(r.phases.connectMs == 2.5 && r.phases.ttfbMs == 3.5)
    }

    @Test("manifest answers: 404 not_found, 429 rate_limited with headroom, a broken connection by its transport class")
    func manifestAnswers() {
        func stop(_ r: CurlResponse) -> (ErrorClass, String)? {
            let verdict = ProbeSteps.manifestAnswer(r, reference: "library/alpine:3.20", https: true, port: 443)
            return (verdict.errorClass, verdict.detail)
        }
        #expect(stop(http(404))?.0 == .notFound)
        #expect(stop(http(404))?.1 == "HEAD /v2/library/alpine/manifests/3.20 answered 404")
        #expect(stop(http(429, hubHeaders))?.1 == "HEAD /v2/library/alpine/manifests/3.20 answered 429 (0 of 100 pulls left, source 203.0.113.7)")
        #expect(stop(CurlResponse(curlCode: 56, curlMessage: "Connection reset by peer", connectMs: 1, tlsMs: 2))?.0 == .tcpRefused)
        #expect(stop(http(200, ["docker-content-digest": "sha256:0123456789abcdef0123"]))?.0 == .ok)
    }

    @Test("quota headers: limit and window, remaining, the source; missing or garbled headers are no figure")
    func quotaHeaders() {
        #expect(ProbeSteps.rateLimit(hubHeaders) == RateLimitState(limit: 100, remaining: 0, windowSeconds: 21_600, source: "203.0.113.7"))
        #expect(ProbeSteps.rateLimit(["ratelimit-limit": "200", "ratelimit-remaining": "150"]) == RateLimitState(limit: 200, remaining: 150, windowSeconds: 21_600, source: nil))
        #expect(ProbeSteps.rateLimit(["ratelimit-limit": "100;w=21600"]) == nil)
        #expect(ProbeSteps.rateLimit(["ratelimit-limit": "lots", "ratelimit-remaining": "1"]) == nil)
        #expect(ProbeSteps.headroom([:]) == "")
    }
}
