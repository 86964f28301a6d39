import Foundation
import RegwatchShared

/// `GET /hosts/ID`: one host as its on-call engineer needs it: status and agent, what each endpoint
/// answers it, the mirror order each runtime on it uses now, the failover generation it applied, its
/// spool, its recent pull failures and the outages that include it. Same rules as ``DashboardPage``:
/// values in, escaped HTML out.
public struct HostPage: Sendable {
    public var host: HostRow
    public var states: [LatestStateRow]
    public var runtimes: [RuntimeConfigState]
    public var pullFailures: [PullEvent]
    /// Active outages; those about this host are picked here.
    public var outages: [OutageRow]
    /// The newest generation issued, to show how far behind the host is.
    public var fleetGeneration: UInt64
    public var refreshSeconds: Int

    public init(
        host: HostRow, states: [LatestStateRow], runtimes: [RuntimeConfigState], pullFailures: [PullEvent],
        outages: [OutageRow], fleetGeneration: UInt64, refreshSeconds: Int = 5
    ) {
        self.host = host
        self.states = states.filter { $0.hostID == host.id }
        self.runtimes = runtimes
        self.pullFailures = pullFailures
        self.outages = outages
        self.fleetGeneration = fleetGeneration
        self.refreshSeconds = refreshSeconds
    }

    public func render() -> String {
        let h = host
        var body = "<p><a href=\"/\">← fleet</a></p>\n<h1>host \(HTMLDocument.agentText(h.id))</h1>\n"
        let labels = h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        body += "<div class=\"scroll\"><table>\n"
        body += "<tr><th>status</th><td class=\"\(DashboardPage.statusClass(h.status))\">\(h.status.rawValue)\(h.connected ? "" : " (not connected)")</td></tr>\n"
        body += "<tr><th>labels</th><td>\(HTMLDocument.agentText(labels, limit: 600))</td></tr>\n"
        body += "<tr><th>last report</th><td>\(HTMLDocument.time(h.lastSeen)) (every \(Self.seconds(h.intervalSeconds)))</td></tr>\n"
        body += "<tr><th>agent</th><td>\(HTMLDocument.agentText(h.agentVersion)), first seen \(HTMLDocument.time(h.firstSeen))</td></tr>\n"
        let behind = h.appliedGeneration < fleetGeneration ? " <span class=\"muted\">(fleet is at \(fleetGeneration))</span>" : ""
        body += "<tr><th>applied generation</th><td>\(h.appliedGeneration)\(behind)</td></tr>\n"
        if let spool = h.spool {
            body += "<tr><th>event spool</th><td class=\"\(spool.dropped > 0 ? "warn" : "ok")\">\(spool.pending) pending, \(spool.dropped) dropped since the agent started</td></tr>\n"
        }
        let sources = h.eventSources.map { "\($0.name): \($0.state.rawValue)\($0.detail.isEmpty ? "" : " (\($0.detail))")" }
        body += "<tr><th>pull-event sources</th><td>\(sources.isEmpty ? "<span class=\"muted\">none reported</span>" : sources.map { HTMLDocument.agentText($0) }.joined(separator: "<br>"))</td></tr>\n"
        body += "</table></div>\n"
        body += outageSection()
        body += probeSection()
        body += runtimeSection()
        body += pullSection()
        return HTMLDocument.page(title: "regwatch: host \(h.id)", refreshSeconds: max(1, refreshSeconds), body: body)
    }

    func outageSection() -> String {
        let mine = outages.filter { DashboardPage.affectedHosts($0, states: states).contains(host.id) }
        var out = "<h2>Active outages including this host (\(mine.count))</h2>\n"
        guard !mine.isEmpty else { return out + "<p class=\"ok\">none</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>kind</th><th>scope</th><th>class</th><th>hosts</th><th>since</th></tr>\n"
        for o in mine {
            out += "<tr class=\"bad\"><td>\(o.kind.rawValue)</td><td>\(HTMLDocument.agentText(DashboardPage.scope(o)))</td>"
            out += "<td>\(o.errorClass?.rawValue ?? "-")</td><td><a href=\"/#outages\">\(o.affectedHosts)/\(o.totalHosts)</a></td><td>\(HTMLDocument.time(o.startedAt))</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    func probeSection() -> String {
        var out = "<h2>Probes</h2>\n"
        guard !states.isEmpty else { return out + "<p class=\"muted\">no probe reported</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>registry</th><th>endpoint</th><th>role</th><th>class</th><th>since</th>"
        out += "<th>dns / connect / tls / first byte / total ms</th><th>quota</th><th>certificate</th><th>detail</th></tr>\n"
        for s in states.sorted(by: { ($0.probe.endpoint.registry, $0.probe.endpoint.url) < ($1.probe.endpoint.registry, $1.probe.endpoint.url) }) {
            let p = s.probe
            let phases = [p.phases.dnsMs, p.phases.connectMs, p.phases.tlsMs, p.phases.ttfbMs, p.phases.totalMs]
                .map { $0.map { String(format: "%.0f", $0) } ?? "-" }.joined(separator: " / ")
            let quota = p.rateLimit.map { "\($0.remaining)/\($0.limit)" } ?? "-"
            let cert = p.tls.map { t in (t.trusted ? "trusted" : "untrusted") + (t.daysLeft.map { ", \($0) days left" } ?? "") } ?? "-"
            let cls = s.stale ? "stale" : p.errorClass.isHealthy ? "ok" : "bad"
            out += "<tr><td>\(HTMLDocument.agentText(p.endpoint.registry))</td><td>\(HTMLDocument.agentText(p.endpoint.url))</td><td>\(p.endpoint.role.rawValue)</td>"
            out += "<td class=\"\(cls)\">\(HTMLDocument.escape(p.errorClass.rawValue))</td><td>\(s.classSince.map(HTMLDocument.time) ?? "-")</td>"
            out += "<td>\(phases)</td><td>\(quota)</td><td>\(cert)</td><td>\(HTMLDocument.agentText(p.detail.prefix(500)))</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    func runtimeSection() -> String {
        var out = "<h2>Runtime mirror order</h2>\n"
        guard !runtimes.isEmpty else { return out + "<p class=\"muted\">no runtime configuration reported</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>runtime</th><th>valid</th><th>registry</th><th>mirrors, in the order tried</th><th>detail</th></tr>\n"
        for r in runtimes {
            let registries = r.mirrors.keys.sorted()
            let rows = registries.isEmpty ? [""] : registries
            for (i, registry) in rows.enumerated() {
                let order = registry.isEmpty ? "<span class=\"muted\">no mirrors</span>"
                    : (r.mirrors[registry] ?? []).map { HTMLDocument.agentText($0) }.joined(separator: " → ")
                out += "<tr><td>\(i == 0 ? r.runtime.rawValue : "")</td><td class=\"\(r.valid ? "ok" : "bad")\">\(i == 0 ? (r.valid ? "yes" : "no") : "")</td>"
                out += "<td>\(HTMLDocument.agentText(registry))</td><td>\(order)</td><td>\(i == 0 ? HTMLDocument.agentText(r.detail) : "")</td></tr>\n"
            }
        }
        return out + "</table></div>\n"
    }

    func pullSection() -> String {
        var out = "<h2>Recent pull failures</h2>\n"
        guard !pullFailures.isEmpty else { return out + "<p class=\"muted\">none stored</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>at</th><th>image</th><th>endpoint</th><th>class</th><th>detail</th><th>source</th></tr>\n"
        for e in pullFailures {
            out += "<tr><td>\(HTMLDocument.time(e.at))</td><td>\(HTMLDocument.agentText(e.image))</td><td>\(HTMLDocument.agentText(e.endpoint ?? "-"))</td>"
            out += "<td class=\"bad\">\(HTMLDocument.escape(e.errorClass.rawValue))</td><td>\(HTMLDocument.agentText(e.detail.prefix(500)))</td><td>\(HTMLDocument.agentText(e.source))</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s) }

    /// The page for an id no host has: a 404 with a way back.
    static func notFound(_ id: String) -> String {
        HTMLDocument.page(title: "regwatch: no such host", refreshSeconds: nil,
                          body: "<p><a href=\"/\">← fleet</a></p>\n<h1>No host \(HTMLDocument.agentText(id.prefix(200)))</h1>\n<p>No agent has reported with this id.</p>\n")
    }
}
