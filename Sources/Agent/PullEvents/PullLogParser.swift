import FoundationEssentials
import RegwatchShared

/// Recognises image-pull failures in runtime and kubelet log lines (the real messages in Tests/SharedTests/Fixtures/classifier/catalogue.tsv) and extracts the
/// image, the registry and the error, classified with the shared classifier.
///
/// Only failures come from logs: Docker's `/events` stream reports successful pulls.
public enum PullLogParser {
    public struct Failure: Sendable, Equatable {
        public var image: String?
        public var registry: String?
        /// The endpoint the error names, when it names one (`Get "https://m:5000/v2/…"`, `host=…`).
        public var endpoint: String?
        public var errorClass: ErrorClass
        public var detail: String
    }

    /// The failure a line reports, or nil for any other line.
    public static func parse(_ raw: String) -> Failure? {
        // Quotes inside logfmt values arrive escaped (`msg="PullImage \"x\" failed"`); look at them plainly.
        let line = raw.replacing("\\\"", with: "\"")
        let markers = [
            "PullImage \"", "Failed to pull image \"", "Attempting next endpoint for pull after error:",
            "Not continuing with pull after error:", "Handler for POST /images/create returned error:", "trying next host",
            "ErrImagePull", "failed to pull and unpack image",
        ]
        guard markers.contains(where: { line.contains($0) }), !line.contains("PullImage \"") || line.contains("failed") else { return nil }
        let image = quoted(after: "PullImage \"", in: line) ?? quoted(after: "Failed to pull image \"", in: line)
            ?? quoted(after: "failed to pull and unpack image \"", in: line) ?? fromImagesCreate(line)
        let detail = field("error", in: raw) ?? errorText(line)
        var endpoint = quoted(after: "Head \"", in: line) ?? quoted(after: "Get \"", in: line)
        endpoint = endpoint.flatMap { URL(string: $0) }.map { u in "\(u.scheme ?? "https")://\(u.host ?? "")\(u.port.map { ":\($0)" } ?? "")" }
        if endpoint == nil, let host = field("host", in: raw) { endpoint = "https://\(host)" }
        let registry = image.flatMap { ImageReference($0)?.registry } ?? field("host", in: raw).map { $0 == "registry-1.docker.io" ? "docker.io" : $0 }
        return Failure(image: image.flatMap { ImageReference($0)?.description } ?? image, registry: registry, endpoint: endpoint,
                       errorClass: ErrorClassifier.classify(message: detail), detail: String(detail.prefix(512)))
    }

    /// The error part: `error="…"` (logfmt, journald) or the text after the marker's colon.
    static func errorText(_ line: String) -> String {
        if let e = field("error", in: line) { return e }
        for marker in ["after error:", "returned error:", "\": "] {
            if let r = line.firstRange(of: marker) { return line[r.upperBound...].trimmingSpaces() }
        }
        return line
    }

    static func quoted(after prefix: String, in line: String, closing: String = "\"") -> String? {
        guard let start = line.firstRange(of: prefix) else { return nil }
        let rest = line[start.upperBound...]
        guard let end = rest.firstRange(of: closing) else { return nil }
        return String(rest[..<end.lowerBound])
    }

    /// `key=value` or `key="value with \"escapes\""` from a logfmt line.
    static func field(_ key: String, in line: String) -> String? {
        guard let r = line.firstRange(of: " \(key)=") ?? (line.hasPrefix("\(key)=") ? line.firstRange(of: "\(key)=") : nil) else { return nil }
        let rest = line[r.upperBound...]
        if rest.first == "\"" {
            var out = ""
            var escaped = false
            for c in rest.dropFirst() {
                if escaped { out.append(c); escaped = false; continue }
                if c == "\\" { escaped = true; continue }
                if c == "\"" { return out }
                out.append(c)
            }
            return out
        }
        return String(rest.prefix { $0 != " " })
    }

    /// dockerd: `Handler for POST /images/create returned error: … for docker.io/library/x:1 …` has no
    /// image field; the API path in debug lines carries `fromImage=`.
    static func fromImagesCreate(_ line: String) -> String? {
        guard let r = line.firstRange(of: "fromImage=") else { return nil }
        let v = line[r.upperBound...].prefix { $0 != "&" && $0 != " " && $0 != "\"" }
        let tag = line.firstRange(of: "tag=").map { String(line[$0.upperBound...].prefix { $0 != "&" && $0 != " " && $0 != "\"" }) }
        return v.percentDecoded().map { name in tag.map { "\(name):\($0)" } ?? name }
    }
}
