import Foundation
@testable import RegwatchAgent
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The probe engine against real registries on loopback.
@Suite("Registry prober (real registries)", .serialized)
struct RegistryProberTests {
    let runner = CurlMultiRunner()
    var prober: RegistryProber { RegistryProber(runner: runner) }

    func target(_ url: String, role: Endpoint.Role = .upstream, image: String? = "test/app:1", credentials: String? = nil, insecure: Bool = false) -> ProbeTarget {
        let (repo, tag) = image.map(ProbeTarget.splitImage) ?? (nil, nil)
        return ProbeTarget(endpoint: Endpoint(registry: "docker.io", url: url, role: role), probeRepository: repo, probeTag: tag,
                           credentials: credentials, insecure: insecure, readsRateLimit: true, connectTimeoutMs: 2000, timeoutMs: 4000)
    }

    @Test("a healthy registry with the probe image: ok, phases measured, digest read")
    func healthy() async throws {
        let h = RegistryHarness("healthy")
        let port = try h.startRegistry(name: "up")
        try h.pushImage(port: port, repository: "test/app", tag: "1")
        let r = await prober.probe(target("http://127.0.0.1:\(port)"))
        #expect(r.errorClass == .ok, "\(r.detail)")
        #expect(r.manifest?.status == 200)
        #expect(r.manifest?.digest?.hasPrefix("sha256:") == true)
        #expect((r.phases.totalMs ?? 0) > 0)
        #expect(r.phases.connectMs != nil)
        #expect(r.tls == nil)
        let missing = await prober.probe(target("http://127.0.0.1:\(port)", image: "test/app:nope"))
        #expect(missing.errorClass == .notFound)
    }

    @Test("a closed port: tcp_refused")
    func refused() async {
        let port = RegistryHarness.freePort()
        let r = await prober.probe(target("http://127.0.0.1:\(port)"))
        #expect(r.errorClass == .tcpRefused, "\(r.detail)")
    }

    @Test("something that is not a registry (a captive portal answering HTML): not_registry")
    func notRegistry() async throws {
        let h = RegistryHarness("web")
        // The fault proxy's html mode answers a login page itself, never asking its upstream.
        let port = try h.startFaultProxy(upstream: RegistryHarness.freePort(), mode: "html")
        let r = await prober.probe(target("http://127.0.0.1:\(port)"))
        #expect(r.errorClass == .notRegistry, "\(r.detail)")
    }

    @Test("htpasswd: no or wrong credentials are auth_failed, the right ones reach the manifest")
    func basicAuth() async throws {
        let h = RegistryHarness("auth")
        let file = try h.htpasswd(user: "alice", password: "s3cret")
        let port = try h.startRegistry(name: "auth", extra: "auth: {htpasswd: {realm: regwatch-test, path: \"\(file)\"}}")
        try h.pushImage(port: port, repository: "test/app", tag: "1", user: "alice:s3cret")
        #expect(await prober.probe(target("http://127.0.0.1:\(port)")).errorClass == .authFailed)
        #expect(await prober.probe(target("http://127.0.0.1:\(port)", credentials: "alice:wrong")).errorClass == .authFailed)
        let ok = await prober.probe(target("http://127.0.0.1:\(port)", credentials: "alice:s3cret"))
        #expect(ok.errorClass == .ok, "\(ok.detail)")
    }

    @Test("token auth (Bearer): the right credentials reach the manifest; wrong ones and a denied scope do not")
    func bearer() async throws {
        let h = RegistryHarness("token")
        let port = try h.startTokenRegistry(name: "reg", credentials: "alice:s3cret", deniedRepository: "test/secret")
        // Push through the registry with a token, as a client would.
        let ok = await prober.probe(target("http://127.0.0.1:\(port)", image: "test/app:1", credentials: "alice:s3cret"))
        #expect(ok.errorClass == .notFound, "\(ok.detail)") // authenticated: the manifest is simply not there
        #expect(ok.manifest?.status == 404)
        let wrong = await prober.probe(target("http://127.0.0.1:\(port)", credentials: "alice:rotated"))
        #expect(wrong.errorClass == .authFailed, "\(wrong.detail)")
        #expect(wrong.detail.contains("token endpoint"))
        let denied = await prober.probe(target("http://127.0.0.1:\(port)", image: "test/secret:1", credentials: "alice:s3cret"))
        #expect(denied.errorClass == .authFailed, "\(denied.detail)")
        #expect(denied.manifest?.status == 401)
    }

    @Test("self-signed TLS: tls_untrusted with the days left read anyway; an insecure mirror is ok")
    func selfSigned() async throws {
        let h = RegistryHarness("tls")
        let cert = try h.certificate(days: 3)
        let port = try h.startRegistry(name: "tls", tls: cert)
        try? h.pushImage(port: port, repository: "test/app", tag: "1")
        let r = await prober.probe(target("https://127.0.0.1:\(port)"))
        #expect(r.errorClass == .tlsUntrusted, "\(r.detail)")
        #expect(r.tls?.trusted == false)
        #expect(r.tls?.daysLeft == 2 || r.tls?.daysLeft == 3)
        #expect(r.phases.tlsMs != nil)
        let insecure = await prober.probe(target("https://127.0.0.1:\(port)", image: nil, insecure: true))
        #expect(insecure.errorClass == .ok, "\(insecure.detail)")
        #expect(insecure.tls?.daysLeft != nil)
    }

    @Test("a private CA: trusted and expiring in days; a name the certificate lacks is tls_hostname; an expired one tls_expired")
    func privateCA() async throws {
        let h = RegistryHarness("ca")
        let ca = try h.certificateAuthority()
        let good = try h.startRegistry(name: "good", tls: try h.signedCertificate(name: "good", days: 3))
        var t = target("https://127.0.0.1:\(good)", image: nil)
        t.caFile = ca
        let ok = await prober.probe(t)
        #expect(ok.errorClass == .ok, "\(ok.detail)")
        #expect(ok.tls?.trusted == true)
        #expect(ok.tls?.daysLeft == 2 || ok.tls?.daysLeft == 3)
        // Without the CA the same certificate is untrusted.
        #expect(await prober.probe(target("https://127.0.0.1:\(good)", image: nil)).errorClass == .tlsUntrusted)

        let other = try h.startRegistry(name: "other", tls: try h.signedCertificate(name: "other", days: 30, san: "DNS:other.test"))
        t.endpoint.url = "https://127.0.0.1:\(other)"
        let wrongName = await prober.probe(t)
        #expect(wrongName.errorClass == .tlsHostname, "\(wrongName.detail)")
        #expect(wrongName.tls?.trusted == false)

        let expired = try h.startRegistry(name: "expired", tls: try h.signedCertificate(name: "expired", days: 0))
        try await Task.sleep(for: .milliseconds(1100))
        t.endpoint.url = "https://127.0.0.1:\(expired)"
        let old = await prober.probe(t)
        #expect(old.errorClass == .tlsExpired, "\(old.detail)")
    }

    @Test("plain http against a TLS registry and TLS against a plain one fail at TLS or as not a registry")
    func schemeMismatch() async throws {
        let h = RegistryHarness("mismatch")
        let port = try h.startRegistry(name: "plain")
        let r = await prober.probe(target("https://127.0.0.1:\(port)"))
        #expect(r.errorClass == .tlsHandshake, "\(r.detail)")
    }

    @Test("a pull-through cache whose upstream is down answers /v2/ but its manifest probe fails")
    func pullThroughUpstreamDown() async throws {
        let h = RegistryHarness("cache")
        let upstream = try h.startRegistry(name: "upstream")
        try h.pushImage(port: upstream, repository: "test/app", tag: "1")
        let cache = try h.startRegistry(name: "cache", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(upstream)\"}")
        #expect(await prober.probe(target("http://127.0.0.1:\(cache)", role: .mirror)).errorClass == .ok)
        // Stop the upstream: the cache still answers /v2/, an uncached tag cannot come through.
        h.stop(name: "upstream")
        let r = await prober.probe(target("http://127.0.0.1:\(cache)", role: .mirror, image: "test/app:2"))
        #expect(r.errorClass != .ok)
        #expect(r.manifest != nil, "the failure is at the manifest step, not /v2/: \(r.detail)")
    }

    @Test("Docker Hub style quota: headroom read from HEAD, an exhausted quota is rate_limited with the counts")
    func rateLimits() async throws {
        let h = RegistryHarness("quota")
        let up = try h.startRegistry(name: "up")
        try h.pushImage(port: up, repository: "test/app", tag: "1")
        let headroom = try h.startFaultProxy(upstream: up, mode: "headroom")
        let ok = await prober.probe(target("http://127.0.0.1:\(headroom)"))
        #expect(ok.errorClass == .ok, "\(ok.detail)")
        #expect(ok.rateLimit == RateLimitState(limit: 100, remaining: 76, windowSeconds: 21600, source: "203.0.113.7"))
        let exhausted = try h.startFaultProxy(upstream: up, mode: "ratelimit")
        let r = await prober.probe(target("http://127.0.0.1:\(exhausted)"))
        #expect(r.errorClass == .rateLimited)
        #expect(r.rateLimit?.remaining == 0)
        let abuse = try h.startFaultProxy(upstream: up, mode: "abuse429")
        #expect(await prober.probe(target("http://127.0.0.1:\(abuse)")).errorClass == .rateLimited)
        let denied = try h.startFaultProxy(upstream: up, mode: "denied")
        #expect(await prober.probe(target("http://127.0.0.1:\(denied)")).errorClass == .accessDenied)
    }

    @Test("a failing registry is server_error, a captive portal page is not_registry, a slow one times out")
    func faults() async throws {
        let h = RegistryHarness("faults")
        let up = try h.startRegistry(name: "up")
        let e503 = try h.startFaultProxy(upstream: up, mode: "error503")
        #expect(await prober.probe(target("http://127.0.0.1:\(e503)")).errorClass == .serverError)
        let html = try h.startFaultProxy(upstream: up, mode: "html")
        #expect(await prober.probe(target("http://127.0.0.1:\(html)")).errorClass == .notRegistry)
        let slow = try h.startFaultProxy(upstream: up, mode: "slow:3")
        var t = target("http://127.0.0.1:\(slow)")
        t.timeoutMs = 1000
        let r = await prober.probe(t)
        #expect(r.errorClass == .timeout, "\(r.detail)")
    }

    @Test("twenty endpoints probe concurrently: the cycle takes about as long as the slowest")
    func concurrency() async throws {
        let h = RegistryHarness("many")
        let port = try h.startRegistry(name: "r")
        let closed = RegistryHarness.freePort()
        let targets = (0..<19).map { _ in target("http://127.0.0.1:\(port)", image: nil) } + [target("http://127.0.0.1:\(closed)", image: nil)]
        let results = await withTaskGroup(of: ProbeResult.self) { group in
            for t in targets { group.addTask { await prober.probe(t) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 20)
        #expect(results.filter { $0.errorClass == .ok }.count == 19)
        #expect(results.filter { $0.errorClass == .tcpRefused }.count == 1)
    }
}
