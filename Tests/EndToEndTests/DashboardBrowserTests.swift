import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The dashboard as people see it: the real aggregator, fed by real agents in a network namespace, opened
/// by headless Chromium (also in the namespace, so it can reach nothing else). Each state of a fleet's
/// incident is photographed (healthy, an outage, a rollout held at its canaries, a frozen failover, a
/// host's page, the phone width) into `.build/test-output/dashboard/`, and the DOM Chromium built is
/// checked for the rows that state must show; layout facts come from the browser itself.
@Suite("dashboard in Chromium", .serialized, .ownThread, .tags(.root))
struct DashboardBrowserTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let output = "\(repo)/.build/test-output/dashboard"

    @Test("healthy, an outage, a rollout held at its canaries, frozen; the host page; at 1400 px and at a phone's 390 px")
    func incident() throws {
        let lab = try FailoverLab(
            mirrorNames: ["mirrorA", "mirrorB"],
            // staleAfter is long: the agents are paused to hold the rollout at its canaries.
            correlation: "{window: 2s, openAfter: 2, recoveryHold: 8s, minHosts: 2, minZones: 2, staleAfter: 120}",
            failover: "{mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 5s, canaryTimeout: 300s}")
        defer { lab.tearDown() }
        let ids = ["z1-a", "z1-b", "z2-a", "z2-b"]
        for id in ids {
            try lab.addHost(id, zone: String(id.prefix(2)), docker: false,
                            events: "{docker: false, journalUnits: [], files: [\(lab.dir)/\(id)-kubelet.log], filePoll: 100ms}")
        }
        try lab.startAggregator()
        for id in ids { try lab.startAgent(id) }
        let browser = try Browser(lab: lab)

        #expect(try lab.eventually(40) {
            let endpoints = try lab.json("/api/v1/endpoints")
            return endpoints.count == 3 && endpoints.allSatisfy { $0["hostsReporting"] as? Int == 4 && $0["errorClass"] as? String == "ok" }
        }, "not every host reported every endpoint healthy: \((try? lab.get("/api/v1/endpoints")) ?? "")")
        // A pull failure on z1-a for its page: a kubelet log file that appears is read from its start.
        let line = "I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"docker.io/library/app:1\\\": "
            + "rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit\"\n"
        try line.write(toFile: "\(lab.dir)/z1-a-kubelet.log", atomically: true, encoding: .utf8)
        #expect(try lab.eventually(20) { try lab.get("/hosts/z1-a").contains("rate_limited") }, "the pull failure never reached z1-a's page")

        // The latency charts draw per-minute roll-ups, which the aggregator writes once a minute.
        #expect(try lab.eventually(150) { Self.count("<svg class=\"spark\"", in: try lab.get("/")) == 3 }, "no latency sparklines after the first roll-up")
        let healthy = try browser.shoot("healthy", "/")
        #expect(Self.count("<svg class=\"spark\"", in: healthy.dom) == 3 && healthy.dom.contains("<polyline"), "a p50/p95 sparkline per endpoint")
        #expect(healthy.dom.contains("Active outages (0)"))
        #expect(ids.allSatisfy { healthy.dom.contains("<a href=\"/hosts/\($0)\"><bdi>\($0)</bdi></a>") }, "host links")
        #expect(Self.count("\">ok ", in: healthy.dom) == 12, "4 hosts × 3 endpoints, all ok")
        #expect(healthy.dom.contains("no outages in this window"))

        // Mirror A dies. As soon as every host has reported it down, and before the outage opens (that
        // takes two windows), the agents are paused: the generation the aggregator then plans reaches its
        // canaries and stays there (no ack, no verification) while the states they reported stand.
        let a = lab.url("mirrorA"), b = lab.url("mirrorB")
        lab.h.stop(name: "mirrorA")
        #expect(try lab.eventually(20) {
            try lab.json("/api/v1/endpoints").contains { $0["endpoint"] as? String == a && $0["hostsFailing"] as? Int == 4 }
        }, "mirror A never failed for every host")
        for id in ids { kill(lab.agents[id]!.processIdentifier, SIGSTOP) }
        defer { for id in ids { kill(lab.agents[id]!.processIdentifier, SIGCONT) } }
        #expect(try lab.eventually(30) { try lab.activeOutages().contains { $0["endpoint"] as? String == a } }, "no outage for mirror A")

        let outage = try browser.shoot("outage", "/")
        #expect(outage.dom.contains("Active outages (1)") && outage.dom.contains("<td>endpoint_down</td>"), "\(outage.dom)")
        // The outage links to the four hosts it is about; the grid shows A refused everywhere.
        #expect(Self.count("<a href=\"/hosts/", in: outage.dom) == 8, "4 in the outage row, 4 in the grid")
        #expect(Self.count("<td class=\"bad\" title=", in: outage.dom) == 4, "mirror A's column")
        // Its bar on the 24 h axis, in its own row.
        #expect(outage.dom.contains("<bdi>\(a)</bdi> <span class=\"muted\">endpoint_down</span>"))
        #expect(outage.dom.contains("<title>endpoint_down tcp_refused "))

        var plan: FailoverLab.Plan?
        #expect(try lab.eventually(30) {
            plan = try lab.failovers().first { $0.mirrors == [b] }
            return plan != nil
        }, "no generation planned: \(lab.summary)")
        let g = try #require(plan).generation
        #expect(plan?.state == "canary", "the rollout went past its canaries while every agent was paused: \(plan!)")
        let rollout = try browser.shoot("rollout", "/")
        #expect(rollout.dom.contains("<td>\(g)</td><td>failover</td><td>canary</td>"), "the generation's row")
        #expect(rollout.dom.contains("<title>generation \(g) failover canary"), "the generation's bar on the time axis")

        let token = "0123456789abcdef-test-token"
        let (status, _) = try RegistryHarness.spawnAndWait("/usr/bin/nsenter", [
            "--net=/run/netns/\(lab.ns)", "/usr/bin/curl", "-sf", "-X", "POST", "-H", "Authorization: Bearer \(token)",
            "http://127.0.0.1:\(lab.httpPort)/api/v1/failovers/freeze?reason=registry%20incident%20INC-42"])
        #expect(status == 0, "freeze")
        let frozen = try browser.shoot("frozen", "/")
        #expect(frozen.dom.contains("FROZEN since") && frozen.dom.contains("<bdi>registry incident INC-42</bdi>"), "\(frozen.dom)")

        let host = try browser.shoot("host", "/hosts/z1-a")
        #expect(host.dom.contains("<h1>host <bdi>z1-a</bdi></h1>"))
        #expect(host.dom.contains("<bdi>\(a)</bdi> → <bdi>\(b)</bdi>"), "the mirror order the runtimes ran when the agent paused")
        #expect(host.dom.contains("Active outages including this host (1)"))
        #expect(host.dom.contains("<td class=\"bad\">rate_limited</td>"), "its pull failure")
        #expect(host.dom.contains("tcp_refused"), "its probe of mirror A")

        // The same states at a phone's width: nothing but the tables' own scroll boxes is wider than the screen.
        for shot in [outage, rollout, frozen, host] + (try [browser.shoot("outage-phone", "/", width: 390, height: 844),
                                                            browser.shoot("host-phone", "/hosts/z1-a", width: 390, height: 844)]) {
            #expect(shot.overflow.isEmpty, "\(shot.name): \(shot.overflow)")
            #expect(shot.scrollWidth <= shot.innerWidth, "\(shot.name): the page is \(shot.scrollWidth) px wide in \(shot.innerWidth)")
            #expect(shot.scripts == 0 && shot.consoleErrors.isEmpty, "\(shot.name): \(shot.consoleErrors)")
        }
    }

    @Test("hostile host ids, labels and error details render as text and break no layout, at 1400 px and 390 px")
    func hostileText() throws {
        let lab = try FailoverLab(mirrorNames: ["mirrorA"], correlation: "{window: 2s, openAfter: 2, minHosts: 2, minZones: 1, staleAfter: 30}",
                                  failover: "{mode: advise}")
        defer { lab.tearDown() }
        // A "mirror" that answers /v2/ with 200 and a content type full of markup: the agent's probe detail
        // quotes it (not a registry), so the markup arrives through a real report.
        let evilPort = lab.upstream + 9
        let markup = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&amp;" + String(repeating: "W", count: 600)
        let server = """
            import http.server
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Type", \(Self.quoted(markup)))
                    self.end_headers()
                    self.wfile.write(b"<html>not a registry</html>")
                def do_HEAD(self): self.do_GET()
                def log_message(self, *a): pass
            http.server.HTTPServer(("127.0.0.1", \(evilPort)), H).serve_forever()
            """
        _ = try lab.h.start(lab.enter[0], Array(lab.enter.dropFirst()) + ["/usr/bin/python3", "-c", server], stderrPath: "\(lab.dir)/evil.log")
        lab.mirrors.append(("evil", evilPort))
        let rtl = "\u{202E}olleh \u{05E9}\u{05DC}\u{05D5}\u{05DD}"
        let longLabel = String(repeating: "x", count: 3000)
        let hostile = String(repeating: "a.-_", count: 15) + "end"  // 63 characters, the longest host id
        try lab.addHost(hostile, zone: "z1", docker: false,
                        labels: "team: \(Self.quoted("<b>bold</b> \"quoted\" 'single' & \(rtl)")), zz-note: \(longLabel)")
        try lab.addHost("plain", zone: "z1", docker: false)
        try lab.startAggregator()
        for host in lab.hosts { try lab.startAgent(host.id) }
        let browser = try Browser(lab: lab)
        #expect(try lab.eventually(40) {
            try lab.json("/api/v1/endpoints").contains { $0["endpoint"] as? String == lab.url("evil") && $0["hostsReporting"] as? Int == 2 }
        }, "the hostile endpoint was never reported: \((try? lab.get("/api/v1/endpoints")) ?? "")")

        for (name, path) in [("hostile", "/"), ("hostile-host", "/hosts/\(hostile)")] {
            for width in [1400, 390] {
                let shot = try browser.shoot("\(name)-\(width)", path, width: width, height: width == 390 ? 844 : 1000)
                #expect(shot.scripts == 0 && shot.consoleErrors.isEmpty, "\(shot.name): \(shot.consoleErrors)")
                // Markup arrived as text: the DOM Chromium built has no element from it.
                #expect(!shot.dom.contains("<script") && !shot.dom.contains("<img") && !shot.dom.contains("<b>bold"), "\(shot.name)")
                #expect(shot.dom.contains("&lt;b&gt;bold&lt;/b&gt;"), "\(shot.name): the label is not shown as text")
                // The right-to-left override stays inside its own isolate, and the 3,000-character label is
                // cut short (whole in the tooltip).
                #expect(shot.dom.contains("\(rtl) zone=z1 zz-note=xxx") && shot.dom.contains("xxx…</bdi>"), "\(shot.name)")
                // One agent's 3,000-character label does not stretch the page into a column of letters.
                #expect(shot.pageHeight < 4000, "\(shot.name): the page is \(shot.pageHeight) px tall")
                #expect(shot.overflow.isEmpty, "\(shot.name): \(shot.overflow)")
                #expect(shot.scrollWidth <= shot.innerWidth, "\(shot.name): \(shot.scrollWidth) px wide in \(shot.innerWidth)")
            }
        }
        let host = try browser.shoot("hostile-detail", "/hosts/\(hostile)")
        #expect(host.dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"), "the probe detail, as text")
    }

    static func count(_ needle: String, in haystack: String) -> Int { haystack.components(separatedBy: needle).count - 1 }

    /// A double-quoted literal that YAML and Python read alike (JSON's escapes are a subset of both).
    static func quoted(_ s: String) -> String {
        var out = ""
        JSONText.appendQuoted(s, to: &out)
        return out
    }
}

/// `browser.py` (one headless Chromium driven over the DevTools protocol) run inside the lab's
/// namespace: each shot writes `<name>.png` and `<name>.html` (the DOM) to the output directory and
/// reports the layout facts the tests check.
struct Browser {
    struct Shot {
        var name: String
        var dom: String
        var innerWidth: Int
        var scrollWidth: Int
        var overflow: [String]
        var scripts: Int
        var consoleErrors: [String]
        /// The full-page screenshot's height in pixels (from its PNG header).
        var pageHeight: Int
    }

    let lab: FailoverLab
    let script = "\(DashboardBrowserTests.repo)/Tests/EndToEndTests/browser.py"

    init(lab: FailoverLab) throws {
        self.lab = lab
        try FileManager.default.createDirectory(atPath: DashboardBrowserTests.output, withIntermediateDirectories: true)
    }

    func shoot(_ name: String, _ path: String, width: Int = 1400, height: Int = 1000) throws -> Shot {
        let spec = "\(lab.dir)/shot-\(name).json"
        let url = "http://127.0.0.1:\(lab.httpPort)\(path)"
        try JSONSerialization.data(withJSONObject: [["name": name, "url": url, "width": width, "height": height]]).write(to: URL(fileURLWithPath: spec))
        let (status, output) = try RegistryHarness.spawnAndWait("/bin/sh", ["-c",
            "exec /usr/bin/nsenter --net=/run/netns/\(lab.ns) /usr/bin/python3 \(script) --out \(DashboardBrowserTests.output) \(spec) 2>\(lab.dir)/browser-\(name).err"])
        let errors = (try? String(contentsOfFile: "\(lab.dir)/browser-\(name).err", encoding: .utf8)) ?? ""
        try #require(status == 0, "browser.py \(name): \(errors.suffix(2000))")
        let line = try #require(output.split(separator: "\n").last, "browser.py printed nothing")
        let shot = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        let layout = try #require(shot["layout"] as? [String: Any], "\(line)")
        let html = try #require(shot["html"] as? String)
        let png = try Data(contentsOf: URL(fileURLWithPath: try #require(shot["png"] as? String)))
        try #require(png.count > 24 && png[12..<16].elementsEqual(Array("IHDR".utf8)), "\(name): not a PNG")
        let pageHeight = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        print("dashboard screenshot: \(shot["png"] as? String ?? "?") (\(width) px, \(url))")
        return Shot(
            name: name, dom: try String(contentsOfFile: html, encoding: .utf8),
            innerWidth: layout["innerWidth"] as? Int ?? -1, scrollWidth: layout["scrollWidth"] as? Int ?? Int.max,
            overflow: (layout["overflow"] as? [Any] ?? ["unreadable"]).map { "\($0)" },
            scripts: layout["scripts"] as? Int ?? -1, consoleErrors: (layout["consoleErrors"] as? [Any] ?? ["unreadable"]).map { "\($0)" },
            pageHeight: pageHeight)
    }
}
