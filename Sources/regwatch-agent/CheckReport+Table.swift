import RegwatchAgent
import RegwatchCLI
import RegwatchShared

/// The human form of a check: one row per endpoint, then the runtimes.
func formatCheckTable(_ report: CheckReport) -> String {
    func ms(_ v: Double?) -> String { v.map { DecimalText.fixed($0, places: $0 < 10 ? 1 : 0) } ?? "-" }
    let rows = report.probes.map { p -> [String] in
        let cert: String = p.tls.map { t in "\(t.daysLeft.map { "\($0)d" } ?? "?")\(t.trusted ? "" : " untrusted")" } ?? "-"
        let rate: String = p.rateLimit.map { "\($0.remaining)/\($0.limit)" } ?? "-"
        return [p.endpoint.registry, p.endpoint.url, p.endpoint.role.rawValue, p.errorClass.rawValue,
                ms(p.phases.dnsMs), ms(p.phases.connectMs), ms(p.phases.tlsMs), ms(p.phases.ttfbMs), ms(p.phases.totalMs), cert, rate, p.detail]
    }
    var out = "host \(report.host.id)" + (report.host.labels.isEmpty ? "" : " (" + report.host.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")") + "\n\n"
    out += formatTable(["REGISTRY", "ENDPOINT", "ROLE", "CLASS", "DNS", "CONNECT", "TLS", "TTFB", "TOTAL ms", "CERT", "QUOTA", "DETAIL"], rows)
    if !report.runtimes.isEmpty {
        out += "\n\n" + formatTable(["RUNTIME", "VALID", "MIRRORS", "DETAIL"], report.runtimes.map { r in
            let mirrors = r.mirrors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.joined(separator: " "))" }.joined(separator: "; ")
            return [r.runtime.rawValue, r.valid ? "yes" : "NO", mirrors.isEmpty ? "-" : mirrors, r.detail]
        })
    }
    return out
}
