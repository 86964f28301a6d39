import Foundation
import RegwatchShared

/// `GET /`: one self-contained HTML page for the operator who has a browser and a minute: active
/// outages with links to their hosts, the last 24 hours on one time axis (outages per scope, failover
/// generations, latency per endpoint, pull quota per egress), the hosts × endpoints grid, the failover
/// table and the headroom now.
///
/// Rendered from values (no I/O) and fully escaped: host ids, labels and error details come from agents,
/// so nothing they send can become markup or script (``HTMLDocument``). No external assets, no
/// JavaScript; the page refreshes itself every `refreshSeconds`.
public struct DashboardPage: Sendable {
    public var now: Date
    public var hosts: [HostRow]
    public var endpoints: [EndpointRow]
    public var states: [LatestStateRow]
    public var outages: [OutageRow]
    public var failovers: [FailoverPlan]
    public var frozen: FailoverState.Freeze?
    public var history: DashboardHistory
    public var refreshSeconds: Int

    public init(
        now: Date, hosts: [HostRow], endpoints: [EndpointRow], states: [LatestStateRow], outages: [OutageRow],
        failovers: [FailoverPlan], frozen: FailoverState.Freeze? = nil, history: DashboardHistory? = nil, refreshSeconds: Int = 5
    ) {
        self.now = now
        self.hosts = hosts
        self.endpoints = endpoints
        self.states = states
        self.outages = outages
        self.failovers = failovers
        self.frozen = frozen
        self.history = history ?? DashboardHistory(since: now.addingTimeInterval(-DashboardHistory.window))
        self.refreshSeconds = refreshSeconds
    }

    /// The page, as UTF-8 HTML.
    public func render() -> String {
        let refresh = max(1, refreshSeconds)
        var body = """
            <h1>regwatch fleet</h1>
            <p class="muted">\(HTMLDocument.time(now)) · \(hosts.count) hosts · \(endpoints.count) endpoints · refreshes every \(refresh) s ·
            JSON: <a href="/api/v1/hosts">hosts</a> <a href="/api/v1/endpoints">endpoints</a> <a href="/api/v1/outages?state=all">outages</a>
            <a href="/api/v1/failovers">failovers</a> <a href="/metrics">metrics</a></p>

            """
        body += outageSection()
        body += historySection()
        body += gridSection()
        body += failoverSection()
        body += headroomSection()
        return HTMLDocument.page(title: "regwatch: \(hosts.count) hosts, \(outages.count) active outages", refreshSeconds: refresh, body: body)
    }

    func outageSection() -> String {
        var out = "<h2 id=\"outages\">Active outages (\(outages.count))</h2>\n"
        guard !outages.isEmpty else { return out + "<p class=\"ok\">none</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>kind</th><th>scope</th><th>class</th><th>hosts</th><th>since</th><th>evidence</th></tr>\n"
        for o in outages {
            let affected = Self.affectedHosts(o, states: states)
            var hostCell = "\(o.affectedHosts)/\(o.totalHosts)"
            if !affected.isEmpty {
                hostCell += "<br>" + affected.prefix(12).map(HTMLDocument.hostLink).joined(separator: " ")
                if affected.count > 12 { hostCell += " <span class=\"muted\">+\(affected.count - 12) more</span>" }
            }
            let evidence = o.evidence.prefix(3).map { "\(HTMLDocument.agentText($0.host)): \(HTMLDocument.agentText($0.detail.prefix(100)))" }
                .joined(separator: "<br>")
            out += "<tr class=\"bad\"><td>\(o.kind.rawValue)</td><td>\(HTMLDocument.agentText(Self.scope(o)))</td>"
            out += "<td>\(HTMLDocument.escape(o.errorClass?.rawValue ?? "-"))</td><td>\(hostCell)</td><td>\(HTMLDocument.time(o.startedAt))</td><td>\(evidence)</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    /// What an outage is about, in words: its endpoint and the zone, host or egress it is limited to.
    static func scope(_ o: OutageRow) -> String {
        [o.endpoint, o.zone.map { "zone=\($0)" }, o.host.map { "host=\($0)" }, o.egress.map { "egress=\($0)" }]
            .compactMap { $0 }.joined(separator: " ")
    }

    /// The hosts an active outage is about, from the latest states: those inside its scope whose probe of
    /// its endpoint fails (any probe, for a zone), every reporter of the endpoint for a certificate.
    static func affectedHosts(_ o: OutageRow, states: [LatestStateRow]) -> [String] {
        var ids = Set<String>()
        for s in states where !s.stale {
            if let host = o.host, s.hostID != host { continue }
            if let zone = o.zone, s.labels["zone"] != zone { continue }
            if let egress = o.egress, (s.labels["egress"] ?? "unknown") != egress { continue }
            if let endpoint = o.endpoint, s.probe.endpoint.url != endpoint { continue }
            if let registry = o.registry, s.probe.endpoint.registry != registry { continue }
            if o.kind == .certExpiring || !s.probe.errorClass.isHealthy { ids.insert(s.hostID) }
        }
        if ids.isEmpty, let host = o.host { ids.insert(host) }
        return ids.sorted()
    }

    func gridSection() -> String {
        var out = "<h2 id=\"grid\">Hosts × endpoints</h2>\n"
        guard !hosts.isEmpty else { return out + "<p class=\"muted\">no host has reported yet</p>\n" }
        let columns = endpoints.map { (registry: $0.registry, url: $0.endpoint) }
        var cells: [String: [String: LatestStateRow]] = [:]
        for s in states { cells[s.hostID, default: [:]]["\(s.probe.endpoint.registry) \(s.probe.endpoint.url)"] = s }
        out += "<div class=\"scroll\"><table><tr><th>host</th><th>labels</th><th>status</th><th>gen</th>"
        for c in columns { out += "<th>\(HTMLDocument.escape(c.url))<br><span class=\"muted\">\(HTMLDocument.escape(c.registry))</span></th>" }
        out += "</tr>\n"
        for h in hosts {
            let labels = h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out += "<tr><td>\(HTMLDocument.hostLink(h.id))</td><td>\(HTMLDocument.agentText(labels, limit: 120))</td>"
            out += "<td class=\"\(Self.statusClass(h.status))\">\(h.status.rawValue)</td><td>\(h.appliedGeneration)</td>"
            for c in columns {
                guard let s = cells[h.id]?["\(c.registry) \(c.url)"] else { out += "<td class=\"muted\">-</td>"; continue }
                let cls = h.status == .stale ? "stale" : s.probe.errorClass.isHealthy ? "ok" : "bad"
                let ms = s.probe.phases.totalMs.map { String(format: " %.0f ms", $0) } ?? ""
                out += "<td class=\"\(cls)\" title=\"\(HTMLDocument.escape(s.probe.detail.prefix(300)))\">\(HTMLDocument.escape(s.probe.errorClass.rawValue))\(ms)</td>"
            }
            out += "</tr>\n"
        }
        return out + "</table></div>\n"
    }

    static func statusClass(_ status: HostRow.Status) -> String {
        switch status {
        case .ok: "ok"
        case .stale: "stale"
        case .disconnected: "warn"
        case .problems: "bad"
        }
    }

    func failoverSection() -> String {
        var out = "<h2 id=\"failover\">Failover generations</h2>\n"
        if let frozen {
            out += "<p class=\"warn\">FROZEN since \(HTMLDocument.time(frozen.since)): \(HTMLDocument.agentText(frozen.reason))</p>\n"
        }
        guard !failovers.isEmpty else { return out + "<p class=\"muted\">no failover generations yet</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>gen</th><th>kind</th><th>state</th><th>mirrors</th><th>acked</th><th>pending</th><th>rejected</th><th>created</th><th>reason</th></tr>\n"
        for p in failovers.sorted(by: { $0.generation > $1.generation }).prefix(20) {
            let mirrors = p.mirrors.keys.sorted().map { "\(HTMLDocument.escape($0)): \(HTMLDocument.escape(p.mirrors[$0]!.joined(separator: " → ")))" }
                .joined(separator: "<br>")
            out += "<tr class=\"\(Self.planClass(p.state))\"><td>\(p.generation)</td><td>\(p.kind.rawValue)</td><td>\(p.state.rawValue)</td><td>\(mirrors)</td>"
            out += "<td>\(p.acked)</td><td>\(p.pending)</td><td>\(p.rejected)</td><td>\(HTMLDocument.time(p.createdAt))</td><td>\(HTMLDocument.agentText(p.reason))</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    static func planClass(_ state: FailoverPlan.State) -> String {
        switch state {
        case .complete: "ok"
        case .halted, .rolledBack: "bad"
        case .canary, .rolling, .advised: "warn"
        case .superseded: "muted"
        }
    }

    func headroomSection() -> String {
        var out = "<h2 id=\"headroom\">Rate-limit headroom now</h2>\n"
        var byEgress: [String: Int] = [:]
        for s in states where !s.stale {
            guard let remaining = s.probe.rateLimit?.remaining else { continue }
            let egress = s.labels["egress"] ?? "unknown"
            byEgress[egress] = min(byEgress[egress] ?? remaining, remaining)
        }
        guard !byEgress.isEmpty else { return out + "<p class=\"muted\">no endpoint reports a pull quota</p>\n" }
        out += "<div class=\"scroll\"><table><tr><th>egress</th><th>lowest remaining</th></tr>\n"
        for (egress, remaining) in byEgress.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            out += "<tr class=\"\(Self.headroomClass(remaining))\"><td>\(HTMLDocument.agentText(egress))</td><td>\(remaining)</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    static func headroomClass(_ remaining: Int) -> String { remaining < 10 ? "bad" : remaining < 50 ? "warn" : "ok" }
}
