import Crypto
import Foundation
import RegwatchShared

/// The shell every dashboard page shares: one `<style>` block allowed by its hash, no scripts, no
/// external assets, and escaping for everything that came from an agent.
///
/// The Content-Security-Policy allows nothing but that one stylesheet (`default-src 'none'`), so even a
/// markup injection that escaping missed could neither run a script nor load a resource; inline `style`
/// attributes are refused too, which is why charts use SVG presentation attributes.
enum HTMLDocument {
    static let style = """
        *{box-sizing:border-box}body{font:14px/1.35 system-ui,sans-serif;margin:12px;color:#222;max-width:1400px}
        h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}
        a{color:#0645ad}p{overflow-wrap:anywhere}.scroll{overflow-x:auto;max-width:100%}
        table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}td{min-width:4em}bdi{overflow-wrap:break-word}
        th{background:#f3f3f3}.ok{background:#d9f2d9}.bad{background:#f8d0d0}.warn{background:#fbeecb}.stale{background:#e6e6e6;color:#777}
        .muted{color:#777}code{font-size:12px}
        .chart{max-width:900px}.row{margin:.35em 0}.label{font-size:12px;overflow-wrap:anywhere}
        .row svg{display:block;width:100%;height:18px;background:#f7f7f7}.row svg.spark{height:36px}
        .axis{display:flex;justify-content:space-between;font-size:11px;color:#777;border-top:1px solid #ccc;margin-top:.2em}
        .legend{font-size:12px}.legend b{display:inline-block;width:.8em;height:.8em;margin:0 .25em 0 .8em;vertical-align:middle}
        .k-down{background:#d9534f}.k-zone{background:#8e44ad}.k-host{background:#f0ad4e}.k-quota{background:#e67e22}.k-cert{background:#c9b037}
        """

    /// `style-src` by hash: the only inline content the page may have.
    static let styleSource = "'sha256-" + Data(SHA256.hash(data: Data(style.utf8))).base64EncodedString() + "'"

    static let contentSecurityPolicy =
        "default-src 'none'; style-src \(styleSource); base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// A whole page; `refreshSeconds` adds a meta refresh.
    static func page(title: String, refreshSeconds: Int?, body: String) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width,initial-scale=1">

            """
        if let refreshSeconds { html += "<meta http-equiv=\"refresh\" content=\"\(max(1, refreshSeconds))\">\n" }
        html += "<title>\(escape(title))</title>\n<style>\(style)</style></head><body>\n"
        html += body
        html += "</body></html>\n"
        return html
    }

    /// HTML text and attribute escaping.
    static func escape(_ s: some StringProtocol) -> String {
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

    /// Text an agent sent, escaped and isolated: right-to-left text in a label cannot reorder what
    /// follows it on the line. Beyond `limit` characters it is cut (the whole text, up to 4,000, in the
    /// tooltip), so one agent's very long string cannot stretch a fleet table.
    static func agentText(_ s: some StringProtocol, limit: Int = 300) -> String {
        guard s.count > limit else { return "<bdi>\(escape(s))</bdi>" }
        return "<bdi title=\"\(escape(s.prefix(4000)))\">\(escape(s.prefix(limit)))…</bdi>"
    }

    /// The per-host page's path, its id percent-encoded (host ids are letters, digits, `.`, `_`, `-`).
    static func hostLink(_ id: String) -> String {
        let encoded = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "._-"))) ?? id
        return "<a href=\"/hosts/\(escape(encoded))\">\(agentText(id))</a>"
    }

    static func time(_ date: Date) -> String { escape(RFC3339.format(date)) }
}
