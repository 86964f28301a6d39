/// An image reference split the way the runtimes split it: `alpine` is `docker.io/library/alpine:latest`.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    /// A tag, or a digest (`sha256:…`).
    public var reference: String

    public init?(_ text: String) {
        guard !text.isEmpty, !text.contains(" ") else { return nil }
        var rest = Substring(text)
        var reference = "latest"
        if let at = rest.firstIndex(of: "@") {
            reference = String(rest[rest.index(after: at)...])
            rest = rest[..<at]
        } else if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            reference = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty }), !reference.isEmpty else { return nil }
        let first = parts[0]
        if parts.count > 1, first.contains(".") || first.contains(":") || first == "localhost" {
            registry = String(first)
            repository = parts.dropFirst().joined(separator: "/")
        } else {
            registry = "docker.io"
            repository = parts.count == 1 ? "library/\(first)" : parts.joined(separator: "/")
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = "docker.io" }
        self.reference = reference
    }

    public var description: String {
        "\(registry)/\(repository)\(reference.hasPrefix("sha256:") ? "@" : ":")\(reference)"
    }
}
