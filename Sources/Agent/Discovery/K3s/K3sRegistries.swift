import FoundationEssentials
import RegwatchShared

/// k3s and RKE2 `registries.yaml`: `mirrors.<registry>.endpoint` (tried in order, then the registry itself)
/// and `configs.<host>` with `auth` and `tls`. k3s writes containerd's `hosts.toml` files from it at start.
public struct K3sRegistries: Sendable, Equatable {
    public struct Config: Sendable, Equatable {
        public var username: String?
        /// Password, token or `auth`; never printed.
        public var secret: String?
        public var caFile: String?
        public var insecureSkipVerify: Bool
    }

    public var mirrors: [(registry: String, endpoints: [String])]
    public var configs: [String: Config]

    public static func == (a: K3sRegistries, b: K3sRegistries) -> Bool {
        a.mirrors.map(\.registry) == b.mirrors.map(\.registry) && a.mirrors.map(\.endpoints) == b.mirrors.map(\.endpoints) && a.configs == b.configs
    }

    public static func parse(_ text: String, path: String) throws(RuntimeConfigError) -> K3sRegistries {
        let root: YAMLNode?
        do { root = try YAMLParser.parse(text) } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: 1, message: error.problem)
        }
        guard let root, !root.isNull else { return K3sRegistries(mirrors: [], configs: [:]) }
        guard root.mapping != nil else { throw RuntimeConfigError(path: path, line: root.line, column: 1, message: "top level must be a mapping") }
        var mirrors: [(String, [String])] = []
        for entry in root["mirrors"]?.mapping ?? [] {
            let endpoints = entry.value["endpoint"]?.sequence?.compactMap(\.scalar) ?? []
            guard entry.value["endpoint"] == nil || entry.value["endpoint"]?.sequence != nil else {
                throw RuntimeConfigError(path: path, line: entry.keyLine, column: 1, message: "mirrors.\(entry.key).endpoint must be a list of URLs")
            }
            mirrors.append((entry.key, endpoints))
        }
        var configs: [String: Config] = [:]
        for entry in root["configs"]?.mapping ?? [] {
            let auth = entry.value["auth"], tls = entry.value["tls"]
            var user = auth?["username"]?.scalar
            var secret = auth?["password"]?.scalar ?? auth?["identity_token"]?.scalar
            if let encoded = auth?["auth"]?.scalar, let data = Data(base64Encoded: encoded), let text = String(data: data, encoding: .utf8),
               let colon = text.firstIndex(of: ":") {
                user = String(text[..<colon])
                secret = String(text[text.index(after: colon)...])
            }
            configs[entry.key] = Config(username: user, secret: secret, caFile: tls?["ca_file"]?.scalar,
                                        insecureSkipVerify: tls?["insecure_skip_verify"]?.bool ?? false)
        }
        return K3sRegistries(mirrors: mirrors, configs: configs)
    }
}
