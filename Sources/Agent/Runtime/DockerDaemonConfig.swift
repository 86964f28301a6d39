import FoundationEssentials

/// The parts of Docker's `daemon.json` that decide where images come from.
///
/// `registry-mirrors` only mirrors Docker Hub; dockerd appends `https://registry-1.docker.io` after them.
/// A value dockerd would refuse (no scheme, a path, query or credentials) makes the daemon fail to start
/// or reload, so it is reported as invalid with dockerd's own wording.
public struct DockerDaemonConfig: Sendable, Equatable {
    public var mirrors: [String]
    public var insecureRegistries: [String]
    public var httpProxy: String?
    public var httpsProxy: String?
    public var noProxy: String?

    /// Parses the file's bytes. Errors carry line and column.
    public static func parse(_ bytes: [UInt8], path: String) throws(RuntimeConfigError) -> DockerDaemonConfig {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            // dockerd treats an empty file as no configuration.
            return DockerDaemonConfig(mirrors: [], insecureRegistries: [])
        }
        // Go's encoding/json decides whether dockerd starts: check with its strictness, report its words.
        if let violation = StrictJSON.check(bytes) {
            let (line, column) = TextPosition.lineColumn(of: violation.offset, in: bytes)
            throw RuntimeConfigError(path: path, line: line, column: column, message: "not valid JSON: \(violation.message)")
        }
        guard let object = JSONValue.parse(bytes) else {
            throw RuntimeConfigError(path: path, message: "not valid JSON")
        }
        guard let root = object.object else {
            throw RuntimeConfigError(path: path, line: 1, column: 1, message: "top level must be a JSON object")
        }
        func strings(_ key: String) throws(RuntimeConfigError) -> [String] {
            guard let value = root[key] else { return [] }
            guard let list = value.strings else {
                throw RuntimeConfigError(path: path, message: "\(key) must be a list of strings")
            }
            return list
        }
        let mirrors = try strings("registry-mirrors")
        for mirror in mirrors {
            if let problem = Self.mirrorProblem(mirror) {
                throw RuntimeConfigError(path: path, message: problem)
            }
        }
        let proxies = root["proxies"]?.object
        return DockerDaemonConfig(
            mirrors: mirrors.map(Self.normalized), insecureRegistries: try strings("insecure-registries"),
            httpProxy: proxies?["http-proxy"]?.string, httpsProxy: proxies?["https-proxy"]?.string,
            noProxy: proxies?["no-proxy"]?.string
        )
    }

    /// dockerd's rules for a mirror value (moby `daemon/pkg/registry/config.go`).
    static func mirrorProblem(_ raw: String) -> String? {
        // Quoted in the message as dockerd would, but never with a password in it.
        let value = ProxySetting.redacted(raw)
        guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
            return "invalid mirror: no scheme specified for \"\(value)\": must use either 'https://' or 'http://'"
        }
        guard let url = URL(string: raw), let host = url.host, !host.isEmpty else {
            return "invalid mirror: \"\(value)\" is not a valid URI"
        }
        if url.user != nil || url.password != nil { return "invalid mirror: username/password not allowed in URI \"\(value)\"" }
        if url.query != nil || url.fragment != nil { return "invalid mirror: query or fragment not allowed in URI \"\(value)\"" }
        let path = url.path
        if !path.isEmpty && path != "/" { return "invalid mirror: path not allowed in URI \"\(value)\"" }
        return nil
    }

    /// dockerd reports mirrors with a trailing slash; regwatch compares them without.
    static func normalized(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
