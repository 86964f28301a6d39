import FoundationEssentials

/// One registry's containerd `hosts.toml`: the hosts tried in file order, then `server`.
///
/// containerd re-reads the file on every pull and only logs `failed to decode` for a malformed one,
/// silently dropping the mirrors; regwatch reports it as invalid with the parser's line and column.
public struct ContainerdHosts: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        public var url: String
        /// Default per containerd: `pull`, `resolve`, `push`.
        public var capabilities: [String]
        public var skipVerify: Bool
        public var ca: [String]
        public var overridePath: Bool
    }

    /// The registry this file is for, from its directory name (`host_5000_` is `host:5000`).
    public var registry: String
    public var server: String?
    public var hosts: [Host]

    /// Mirrors as the runtime tries them: hosts that can pull, in order.
    public var pullMirrors: [String] { hosts.filter { $0.capabilities.contains("pull") }.map(\.url) }

    public static func parse(_ text: String, registry: String, path: String) throws(RuntimeConfigError) -> ContainerdHosts {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(text)
        } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: error.column, message: "failed to decode: \(error.message)")
        }
        let server = table["server"]?.string
        var hosts: [Host] = []
        if let hostTable = table["host"]?.table {
            for (url, value) in hostTable {
                guard let h = value.table else {
                    throw RuntimeConfigError(path: path, message: "host.\"\(url)\" must be a table")
                }
                let caps = h["capabilities"]?.array?.compactMap { $0.string } ?? ["pull", "resolve", "push"]
                let ca: [String]
                if let one = h["ca"]?.string { ca = [one] } else { ca = h["ca"]?.array?.compactMap { $0.string } ?? [] }
                hosts.append(Host(url: url, capabilities: caps, skipVerify: h["skip_verify"]?.bool ?? false, ca: ca, overridePath: h["override_path"]?.bool ?? false))
            }
        }
        return ContainerdHosts(registry: registry, server: server, hosts: hosts)
    }

    /// The registry a `certs.d` directory name stands for.
    public static func registry(forDirectory name: String) -> String {
        if name.hasSuffix("_"), let r = name.dropLast().lastRange(of: "_"),
           let port = Int(name.dropLast()[r.upperBound...]), port > 0 {
            return "\(name[..<r.lowerBound]):\(port)"
        }
        return name
    }
}
