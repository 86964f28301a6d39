import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Diagnosis (pure)")
struct DiagnosisTests {
    let t0 = Date(timeIntervalSince1970: 1_764_000_000)
    let image = ImageReference("alpine:3.20")!

    func result(_ url: String, _ role: Endpoint.Role, _ cls: ErrorClass, _ detail: String = "") -> ProbeResult {
        ProbeResult(endpoint: Endpoint(registry: "docker.io", url: url, role: role), errorClass: cls, detail: detail, checkedAt: t0)
    }

    @Test("image references are split as the runtimes split them")
    func references() {
        #expect(ImageReference("alpine")?.description == "docker.io/library/alpine:latest")
        #expect(ImageReference("team/app:1")?.description == "docker.io/team/app:1")
        #expect(ImageReference("registry.example:5000/team/app:2")?.registry == "registry.example:5000")
        #expect(ImageReference("localhost/app")?.registry == "localhost")
        #expect(ImageReference("ghcr.io/o/r@sha256:abc")?.reference == "sha256:abc")
        #expect(ImageReference("index.docker.io/library/nginx")?.registry == "docker.io")
        #expect(ImageReference("") == nil)
        #expect(ImageReference("a b") == nil)
        #expect(ImageReference("bad//name") == nil)
    }

    @Test("a firewalled first mirror: the verdict names it, says pulls fall through after a dial timeout")
    func deadMirror() {
        let d = Diagnosis.evaluate(image: image, path: [
            result("https://m1:5000", .mirror, .tcpTimeout, "dial tcp 10.0.0.5:5000: i/o timeout"),
            result("https://registry-1.docker.io", .upstream, .ok),
        ])
        #expect(d.verdict.class == "tcp_timeout")
        #expect(d.verdict.summary.contains("pulls fall through to https://registry-1.docker.io after a dial timeout"))
        #expect(d.verdict.next.contains("drops TCP 5000"))
        #expect(d.steps.map(\.check) == ["tcp", "manifest"])
        #expect(!d.healthy)
    }

    @Test("the flowchart order decides between failures: rate limit before auth before DNS before TCP")
    func priority() {
        let d = Diagnosis.evaluate(image: image, path: [
            result("https://m1:5000", .mirror, .tcpRefused),
            result("https://m2:5000", .mirror, .dnsNXDomain),
            result("https://registry-1.docker.io", .upstream, .rateLimited),
        ])
        #expect(d.verdict.class == "rate_limited")
        #expect(d.verdict.summary.contains("no endpoint serves"))
        #expect(d.verdict.next.contains("quota"))
    }

    @Test("failures after the endpoint that serves do not matter; all healthy is ok")
    func served() {
        let ok = Diagnosis.evaluate(image: image, path: [result("https://m1:5000", .mirror, .ok), result("https://registry-1.docker.io", .upstream, .rateLimited)])
        #expect(ok.verdict.class == "ok")
        #expect(ok.healthy)
        let missing = Diagnosis.evaluate(image: image, path: [result("https://m1:5000", .mirror, .notFound), result("https://registry-1.docker.io", .upstream, .ok)])
        #expect(missing.verdict.class == "not_found")
        #expect(missing.verdict.next.contains("mirror's own upstream may be down"))
    }

    @Test("the Markdown report: verdict, next step, each phase per endpoint, secrets replaced wherever they appear")
    func report() {
        var tls = result("https://m1:5000", .mirror, .tlsExpired, "certificate of m1: expired | renew")
        tls.phases = PhaseTimings(dnsMs: 1.25, connectMs: 3, tlsMs: 12)
        let auth = result("https://registry-1.docker.io", .upstream, .authFailed, "401 for user bob with password hunter2-secret, then pa|pe")
        let d = Diagnosis.evaluate(image: image, path: [tls, auth])
        let md = DiagnosisReport(diagnosis: d, hostID: "node-a1", configSource: "/etc/regwatch/agent.yaml", generatedAt: t0,
                                 secrets: ["hunter2-secret", "x", "pa|pe"]).markdown
        #expect(md.hasPrefix("# regwatch diagnosis: `docker.io/library/alpine:3.20`\n"))
        #expect(md.contains("- verdict: **auth_failed**"))
        #expect(md.contains("**Next step:** credentials for docker.io are refused"))
        #expect(md.contains("| 1 | mirror | `https://m1:5000` | ✔ 1.3 | ✔ 3.0 | ✘ 12 | · | · | · | `tls_expired` | certificate of m1: expired \\| renew |"), "\(md)")
        #expect(md.contains("| 2 | upstream | `https://registry-1.docker.io` | ✔ | ✔ | ✔ | ✔ | ✘ | · | `auth_failed` | 401 for user bob with password ***, then *** |"), "\(md)")
        #expect(!md.contains("hunter2-secret"))
        // A one-letter "secret" would blank the report: too short to redact.
        #expect(md.contains("regwatch"))
    }

    @Test("health: fresh within three intervals (at least 90 s), stale after, none before the first cycle")
    func healthVerdict() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        #expect(LastCycleFile.verdict(last: now.addingTimeInterval(-80), now: now, interval: .seconds(10)).healthy)
        #expect(!LastCycleFile.verdict(last: now.addingTimeInterval(-95), now: now, interval: .seconds(10)).healthy)
        #expect(LastCycleFile.verdict(last: now.addingTimeInterval(-170), now: now, interval: .seconds(60)).healthy)
        let stale = LastCycleFile.verdict(last: now.addingTimeInterval(-181), now: now, interval: .seconds(60))
        #expect(!stale.healthy && stale.message == "last check cycle finished 181 s ago, more than 180 s (3 intervals): the agent is stuck")
        #expect(LastCycleFile.verdict(last: nil, now: now, interval: .seconds(30)).message == "no check cycle has finished yet")
    }
}
