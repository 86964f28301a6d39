import Foundation
import RegwatchShared

/// The last 24 hours on one time axis: outages per scope, failover generations, latency per endpoint
/// and pull quota per egress.
extension DashboardPage {
    func historySection() -> String {
        let chart = TimeChart(since: history.since, until: now)
        var out = "<h2 id=\"history\">Last \(Int(now.timeIntervalSince(history.since) / 3600)) hours</h2>\n<div class=\"chart\">\n"
        out += "<h3>Outages</h3>\n"
        out += "<p class=\"legend\"><b class=\"k-down\"></b>endpoint, DNS, auth<b class=\"k-zone\"></b>zone<b class=\"k-host\"></b>host"
        out += "<b class=\"k-quota\"></b>quota<b class=\"k-cert\"></b>certificate</p>\n"
        out += outageRows(chart)
        out += "<h3>Failover generations</h3>\n" + generationRow(chart)
        out += "<h3>Probe latency p50 / p95 (dashed)</h3>\n" + latencyRows(chart)
        out += "<h3>Pull quota per egress (lowest remaining)</h3>\n" + headroomRows(chart)
        return out + "</div>\n"
    }

    static func fill(_ kind: OutageKind) -> String {
        switch kind {
        case .endpointDown, .upstreamDownViaMirror, .dnsOutage, .authBroken: "#d9534f"
        case .zoneNetwork: "#8e44ad"
        case .hostLocal: "#f0ad4e"
        case .rateLimitExhausted: "#e67e22"
        case .certExpiring: "#c9b037"
        }
    }

    func outageRows(_ chart: TimeChart) -> String {
        guard !history.outages.isEmpty else { return "<p class=\"muted\">no outages in this window</p>\n" }
        // One row per scope, so an endpoint that went down three times shows three bars on one line.
        var rows: [String: [OutageRow]] = [:]
        for o in history.outages { rows[Self.scope(o), default: []].append(o) }
        var out = ""
        for (scope, list) in rows.sorted(by: { $0.key < $1.key }) {
            let kinds = Set(list.map(\.kind.rawValue)).sorted().joined(separator: ", ")
            out += "<div class=\"row\"><div class=\"label\">\(HTMLDocument.agentText(scope)) <span class=\"muted\">\(kinds)</span></div>"
            out += chart.bars(list.map { o in
                let end = o.endedAt.map { RFC3339.format($0) } ?? "now"
                return TimeChart.Bar(from: o.startedAt, to: o.endedAt ?? now, fill: Self.fill(o.kind),
                                     title: "\(o.kind.rawValue) \(o.errorClass?.rawValue ?? "") \(RFC3339.format(o.startedAt)) – \(end)")
            })
            out += "</div>\n"
        }
        return chart.axis() + out + chart.axis()
    }

    func generationRow(_ chart: TimeChart) -> String {
        let recent = failovers.filter { ($0.finishedAt ?? now) >= history.since }
        guard !recent.isEmpty else { return "<p class=\"muted\">no failover generation in this window</p>\n" }
        let bars = recent.sorted { $0.generation < $1.generation }.map { p in
            TimeChart.Bar(from: p.createdAt, to: p.finishedAt ?? now, fill: Self.fill(p.state),
                          title: "generation \(p.generation) \(p.kind.rawValue) \(p.state.rawValue): \(p.reason)")
        }
        let names = recent.sorted { $0.generation < $1.generation }.suffix(8).map { "\($0.generation) \($0.state.rawValue)" }.joined(separator: " · ")
        return "<div class=\"row\"><div class=\"label\">\(HTMLDocument.escape(names))</div>\(chart.bars(bars))</div>\n" + chart.axis()
    }

    static func fill(_ state: FailoverPlan.State) -> String {
        switch state {
        case .complete: "#5cb85c"
        case .halted, .rolledBack: "#d9534f"
        case .canary, .rolling: "#f0ad4e"
        case .advised: "#5bc0de"
        case .superseded: "#aaaaaa"
        }
    }

    func latencyRows(_ chart: TimeChart) -> String {
        var byEndpoint: [String: [ProbeMinuteRow]] = [:]
        for m in history.minutes where m.p50Ms != nil { byEndpoint["\(m.endpoint) \(m.registry)", default: []].append(m) }
        guard !byEndpoint.isEmpty else { return "<p class=\"muted\">no timed probes in this window</p>\n" }
        var out = ""
        for (_, minutes) in byEndpoint.sorted(by: { $0.key < $1.key }) {
            let buckets = Self.downsample(minutes, every: 600)
            let p50 = buckets.compactMap { b in b.p50.map { (b.at, $0) } }
            let p95 = buckets.compactMap { b in b.p95.map { (b.at, $0) } }
            let top = max(p95.map(\.1).max() ?? 0, p50.map(\.1).max() ?? 0)
            let last = minutes.last!
            let latest = String(format: "p50 %.0f ms, p95 %.0f ms at %@; scale 0–%.0f ms", last.p50Ms ?? 0, last.p95Ms ?? last.p50Ms ?? 0,
                                RFC3339.format(last.minute), top)
            out += "<div class=\"row\"><div class=\"label\">\(HTMLDocument.agentText(last.endpoint)) <span class=\"muted\">\(HTMLDocument.escape(last.registry)) · \(HTMLDocument.escape(latest))</span></div>"
            out += chart.sparkline([.init(points: p95, stroke: "#d9534f", dashed: true), .init(points: p50, stroke: "#337ab7")],
                                   maxValue: top, title: "\(last.endpoint) latency: \(latest)")
            out += "</div>\n"
        }
        return out + chart.axis()
    }

    /// 10-minute buckets: p50 as the mean of the minutes' medians, p95 as the worst minute (a spike
    /// must survive the averaging).
    static func downsample(_ minutes: [ProbeMinuteRow], every seconds: TimeInterval) -> [(at: Date, p50: Double?, p95: Double?)] {
        var buckets: [Double: (p50: [Double], p95: Double?)] = [:]
        for m in minutes {
            let key = (m.minute.timeIntervalSince1970 / seconds).rounded(.down) * seconds
            var b = buckets[key] ?? ([], nil)
            if let p = m.p50Ms { b.p50.append(p) }
            if let p = m.p95Ms { b.p95 = max(b.p95 ?? p, p) }
            buckets[key] = b
        }
        return buckets.sorted { $0.key < $1.key }.map { key, b in
            (Date(timeIntervalSince1970: key + seconds / 2), b.p50.isEmpty ? nil : b.p50.reduce(0, +) / Double(b.p50.count), b.p95)
        }
    }

    func headroomRows(_ chart: TimeChart) -> String {
        var byEgress: [String: [HeadroomMinuteRow]] = [:]
        for h in history.headroom { byEgress[h.egress, default: []].append(h) }
        guard !byEgress.isEmpty else { return "<p class=\"muted\">no pull quota reported in this window</p>\n" }
        var out = ""
        for (egress, rows) in byEgress.sorted(by: { $0.key < $1.key }) {
            let top = Double(rows.map(\.remaining).max() ?? 1)
            let last = rows.last!
            let text = "now \(last.remaining), lowest \(rows.map(\.remaining).min()!), scale 0–\(Int(top))"
            out += "<div class=\"row\"><div class=\"label\">\(HTMLDocument.agentText(egress)) <span class=\"muted\">\(text)</span></div>"
            out += chart.sparkline([.init(points: rows.map { ($0.minute, Double($0.remaining)) }, stroke: last.remaining < 10 ? "#d9534f" : "#5cb85c")],
                                   maxValue: top, title: "\(egress) pull quota: \(text)", gap: 5 * 60)
            out += "</div>\n"
        }
        return out + chart.axis()
    }
}
