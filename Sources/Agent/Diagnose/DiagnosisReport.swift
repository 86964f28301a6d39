import FoundationEssentials
import RegwatchShared

/// `diagnose IMAGE --report FILE`: a Markdown summary an engineer pastes into an incident ticket — the
/// configuration found (secrets redacted), each endpoint's probe phases, the verdict and the next step.
public struct DiagnosisReport: Sendable {
    public var diagnosis: Diagnosis
    public var hostID: String
    /// `discovered on this host` or the config file used.
    public var configSource: String
    public var generatedAt: Date
    /// Every credential the run knew: replaced by `***` wherever it might appear (a registry echoing it).
    public var secrets: [String]

    public init(diagnosis: Diagnosis, hostID: String, configSource: String, generatedAt: Date, secrets: [String]) {
        self.diagnosis = diagnosis
        self.hostID = hostID
        self.configSource = configSource
        self.generatedAt = generatedAt
        self.secrets = secrets
    }

    /// The phases a probe goes through, in order, and the `check` of ``Diagnosis`` that stops at each.
    static let phases: [(name: String, checks: Set<String>)] = [
        ("DNS", ["dns"]), ("TCP", ["tcp", "proxy"]), ("TLS", ["tls"]), ("/v2/", ["registry", "timeout", "other"]),
        ("auth", ["auth", "rate_limit"]), ("manifest", ["manifest"]),
    ]

    public var markdown: String {
        let d = diagnosis
        var out = "# regwatch diagnosis: `\(d.image)`\n\n"
        out += "- host: `\(hostID)`\n- when: \(RFC3339.format(generatedAt))\n- configuration: \(configSource)\n"
        out += "- verdict: **\(d.verdict.class)**\n\n"
        out += "## Verdict\n\n\(d.verdict.summary)\n\n**Next step:** \(d.verdict.next)\n\n"
        out += "## Pull path\n\nThe endpoints in the order the runtime tries them, each phase with its cumulative time in ms "
            + "(✔ passed, ✘ failed here, · not reached).\n\n"
        out += row(["#", "role", "endpoint"] + Self.phases.map(\.name) + ["class", "evidence"])
        out += row(Array(repeating: "---", count: 5 + Self.phases.count))
        for (i, step) in d.steps.enumerated() {
            out += row(["\(i + 1)", step.role, "`\(step.endpoint)`"] + phaseCells(step) + ["`\(step.class)`", step.detail])
        }
        if let discovery = d.discovery {
            out += "\n## Configuration found on the host\n\nNo config file: regwatch read the runtimes' own files"
                + (discovery.root == "/" ? "" : " under `\(discovery.root)`") + ". Credentials are shown by user name only.\n\n"
            out += row(["what", "about", "found", "source"]) + row(["---", "---", "---", "---"])
            for f in discovery.findings {
                out += row([f.kind == .problem ? "**problem**" : f.kind.rawValue, "`\(f.subject)`", f.detail, "`\(f.source)`"])
            }
            out += "\nRegistries checked: " + discovery.registries.map { "`\($0)`" }.joined(separator: ", ") + "\n"
        }
        out += "\n---\nWritten by `regwatch-agent diagnose` \(RegwatchVersion.current).\n"
        return redact(out)
    }

    func phaseCells(_ step: Diagnosis.Step) -> [String] {
        let failed = step.class == ErrorClass.ok.rawValue ? nil : Self.phases.firstIndex { $0.checks.contains(step.check) }
        let p = step.phases
        let times: [Double?] = [p.dnsMs, p.connectMs, p.tlsMs, p.ttfbMs, nil, p.totalMs]
        let https = step.endpoint.hasPrefix("https://")
        return Self.phases.indices.map { i in
            if i == 2 && !https { return "n/a" }
            let ms = times[i].map { " " + DecimalText.fixed($0, places: $0 < 10 ? 1 : 0) } ?? ""
            guard let failed else { return "✔" + ms }
            if i < failed { return "✔" + ms }
            return i == failed ? "✘" + ms : "·"
        }
    }

    func row(_ cells: [String]) -> String {
        // Redacted before escaping: a secret with a `|` in it must still be found.
        "| " + cells.map { redact($0).replacing("|", with: "\\|").replacing("\n", with: " ") }.joined(separator: " | ") + " |\n"
    }

    func redact(_ text: String) -> String {
        var out = text
        for secret in secrets where secret.count >= 3 { out = out.replacing(secret, with: "***") }
        return out
    }
}
