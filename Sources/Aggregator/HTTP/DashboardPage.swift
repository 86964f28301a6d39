import Foundation
import RegwatchShared

/// `GET /`: one self-contained HTML page for the operator who has a browser and a minute: the hosts ×
/// endpoints health grid, active outages, the failover timeline and rate-limit headroom.
///
/// Rendered from values (no I/O) and fully escaped: host ids, labels and error details come from agents,
/// so nothing they send can become markup or script. No external assets, no JavaScript; the page
/// refreshes itself every `refreshSeconds`.
public struct DashboardPage: Sendable {
    public var now: Date
    public var hosts: [HostRow]
    public var endpoints: [EndpointRow]
    public var states: [LatestStateRow]
    public var outages: [OutageRow]
    public var failovers: [FailoverPlan]
    public var frozen: FailoverState.Freeze?
    public var refreshSeconds: Int

    public init(
        now: Date, hosts: [HostRow], endpoints: [EndpointRow], states: [LatestStateRow], outages: [OutageRow],
        failovers: [FailoverPlan], frozen: FailoverState.Freeze? = nil, refreshSeconds: Int = 5
    ) {
        self.now = now
        self.hosts = hosts
        self.endpoints = endpoints
        self.states = states
        self.outages = outages
        self.failovers = failovers
        self.frozen = frozen
        self.refreshSeconds = refreshSeconds
    }

    /// The page, as UTF-8 HTML.
    public func render() -> String {
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta http-equiv="refresh" content="\(max(1, refreshSeconds))">
        <title>regwatch: \(hosts.count) hosts, \(outages.count) active outages</title>
        <style>
        body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
        table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
        th{background:#f3f3f3}.ok{background:#d9f2d9}.bad{background:#f8d0d0}.warn{background:#fbeecb}.stale{background:#e6e6e6;color:#777}
        .muted{color:#777}code{font-size:12px}
        </style></head><body>
        <h1>regwatch fleet</h1>
        <p class="muted">\(Self.escape(RFC3339.format(now))) · \(hosts.count) hosts · \(endpoints.count) endpoints · refreshes every \(max(1, refreshSeconds)) s ·
        JSON: <a href="/api/v1/hosts">hosts</a> <a href="/api/v1/endpoints">endpoints</a> <a href="/api/v1/outages?state=all">outages</a>
        <a href="/api/v1/failovers">failovers</a> <a href="/metrics">metrics</a></p>

        """
        html += outageSection()
        html += gridSection()
        html += failoverSection()
        html += headroomSection()
        html += "</body></html>\n"
        return html
    }

    func outageSection() -> String {
        var out = "<h2>Active outages (\(outages.count))</h2>\n"
        guard !outages.isEmpty else { return out + "<p class=\"ok\">none</p>\n" }
        out += "<table><tr><th>kind</th><th>scope</th><th>class</th><th>hosts</th><th>since</th><th>evidence</th></tr>\n"
        for o in outages {
            let scope = [o.endpoint, o.zone.map { "zone=\($0)" }, o.host.map { "host=\($0)" }, o.egress.map { "egress=\($0)" }]
                .compactMap { $0 }.joined(separator: " ")
            let evidence = o.evidence.prefix(3).map { "\($0.host): \($0.detail.prefix(100))" }.joined(separator: "\n")
            out += row([o.kind.rawValue, scope, o.errorClass?.rawValue ?? "-", "\(o.affectedHosts)/\(o.totalHosts)", RFC3339.format(o.startedAt), evidence],
                       cls: "bad")
        }
        return out + "</table>\n"
    }

    func gridSection() -> String {
        var out = "<h2>Hosts × endpoints</h2>\n"
        guard !hosts.isEmpty else { return out + "<p class=\"muted\">no host has reported yet</p>\n" }
        let columns = endpoints.map { (registry: $0.registry, url: $0.endpoint) }
        var cells: [String: [String: LatestStateRow]] = [:]
        for s in states { cells[s.hostID, default: [:]]["\(s.probe.endpoint.registry) \(s.probe.endpoint.url)"] = s }
        out += "<table><tr><th>host</th><th>labels</th><th>status</th><th>gen</th>"
        for c in columns { out += "<th>\(Self.escape(c.url))<br><span class=\"muted\">\(Self.escape(c.registry))</span></th>" }
        out += "</tr>\n"
        for h in hosts {
            let labels = h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let hostClass = h.status == .ok ? "ok" : h.status == .stale ? "stale" : h.status == .disconnected ? "warn" : "bad"
            out += "<tr><td>\(Self.escape(h.id))</td><td>\(Self.escape(labels))</td><td class=\"\(hostClass)\">\(h.status.rawValue)</td><td>\(h.appliedGeneration)</td>"
            for c in columns {
                guard let s = cells[h.id]?["\(c.registry) \(c.url)"] else { out += "<td class=\"muted\">-</td>"; continue }
                let cls = h.status == .stale ? "stale" : s.probe.errorClass.isHealthy ? "ok" : "bad"
                let ms = s.probe.phases.totalMs.map { String(format: " %.0f ms", $0) } ?? ""
                out += "<td class=\"\(cls)\" title=\"\(Self.escape(String(s.probe.detail.prefix(300))))\">\(Self.escape(s.probe.errorClass.rawValue))\(ms)</td>"
            }
            out += "</tr>\n"
        }
        return out + "</table>\n"
    }

    func failoverSection() -> String {
        var out = "<h2>Failover timeline</h2>\n"
        if let frozen {
            out += "<p class=\"warn\">FROZEN since \(Self.escape(RFC3339.format(frozen.since))): \(Self.escape(frozen.reason))</p>\n"
        }
        guard !failovers.isEmpty else { return out + "<p class=\"muted\">no failover generations yet</p>\n" }
        out += "<table><tr><th>gen</th><th>kind</th><th>state</th><th>mirrors</th><th>acked</th><th>pending</th><th>rejected</th><th>created</th><th>reason</th></tr>\n"
        for p in failovers.prefix(20) {
            let mirrors = p.mirrors.keys.sorted().map { "\($0): \(p.mirrors[$0]!.joined(separator: " → "))" }.joined(separator: "\n")
            let cls: String = switch p.state {
            case .complete: "ok"
            case .halted, .rolledBack: "bad"
            case .canary, .rolling, .advised: "warn"
            case .superseded: "muted"
            }
            out += row(["\(p.generation)", p.kind.rawValue, p.state.rawValue, mirrors, "\(p.acked)", "\(p.pending)", "\(p.rejected)",
                        RFC3339.format(p.createdAt), p.reason], cls: cls)
        }
        return out + "</table>\n"
    }

    func headroomSection() -> String {
        let limited = endpoints.filter { $0.lowestRateLimitRemaining != nil }
        var out = "<h2>Rate-limit headroom</h2>\n"
        guard !limited.isEmpty else { return out + "<p class=\"muted\">no endpoint reports a pull quota</p>\n" }
        var byEgress: [String: Int] = [:]
        for s in states {
            guard let remaining = s.probe.rateLimit?.remaining else { continue }
            let egress = s.egress ?? s.probe.rateLimit?.source ?? "unknown"
            byEgress[egress] = min(byEgress[egress] ?? remaining, remaining)
        }
        out += "<table><tr><th>egress</th><th>lowest remaining</th></tr>\n"
        for (egress, remaining) in byEgress.sorted(by: { $0.value < $1.value }) {
            out += row([egress, "\(remaining)"], cls: remaining < 10 ? "bad" : remaining < 50 ? "warn" : "ok")
        }
        return out + "</table>\n"
    }

    func row(_ cells: [String], cls: String) -> String {
        "<tr class=\"\(cls)\">" + cells.map { "<td>\(Self.escape($0).replacingOccurrences(of: "\n", with: "<br>"))</td>" }.joined() + "</tr>\n"
    }

    /// HTML text and attribute escaping.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
