import FoundationEssentials

/// The part of containerd's `config.toml` that says where `hosts.toml` files live: the CRI plugin's
/// `registry.config_path` (`plugins."io.containerd.grpc.v1.cri".registry` in version 2,
/// `plugins."io.containerd.cri.v1.images".registry` in version 3). Unset: `/etc/containerd/certs.d`.
public struct ContainerdConfig: Sendable, Equatable {
    public static let defaultConfigPath = "/etc/containerd/certs.d"

    /// As written: one directory or several separated by `:`; nil when the file does not set it.
    public var configPath: String?
    /// The deprecated inline `registry.mirrors` table is set (containerd then ignores `config_path`'s files
    /// for those registries in 1.x); reported, since mirrors there are easy to overlook.
    public var legacyMirrors: [String: [String]]

    public static func parse(_ text: String, path: String) throws(RuntimeConfigError) -> ContainerdConfig {
        let table: TOMLTable
        do { table = try TOMLParser.parse(text) } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: error.column, message: error.message)
        }
        let plugins = table["plugins"]?.table
        var result = ContainerdConfig(configPath: nil, legacyMirrors: [:])
        for plugin in ["io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri"] {
            guard let registry = plugins?[plugin]?.table?["registry"]?.table else { continue }
            if result.configPath == nil, let p = registry["config_path"]?.string, !p.isEmpty { result.configPath = p }
            for (name, value) in registry["mirrors"]?.table ?? TOMLTable() {
                let endpoints = value.table?["endpoint"]?.array?.compactMap(\.string) ?? []
                if !endpoints.isEmpty { result.legacyMirrors[name] = endpoints }
            }
        }
        return result
    }
}
