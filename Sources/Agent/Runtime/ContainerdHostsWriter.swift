import FoundationEssentials

/// Writes containerd's `certs.d/<registry>/hosts.toml` for a mirror order.
///
/// containerd tries the `[host]` tables in file order and falls back to `server`, so the order is the
/// file. Only mirrors the local config marks `trusted` get `resolve` (turning a tag into a digest is
/// trusting the mirror with what the tag means); every other mirror only serves `pull` by digest. No
/// `skip_verify` is ever written: an untrusted certificate needs a `ca` from the local config. The text
/// is parsed back with the same reader `check` uses before anyone writes it.
public enum ContainerdHostsWriter {
    public struct Mirror: Sendable, Equatable {
        public var url: String
        public var trusted: Bool
        public var ca: String?

        public init(url: String, trusted: Bool, ca: String? = nil) {
            self.url = url
            self.trusted = trusted
            self.ca = ca
        }
    }

    /// The directory under `certsDir` for `registry` (`docker.io`, `registry.example:5000`); nil for a
    /// name that could leave it.
    /// With several directories (`a:b`, containerd's search list) the first wins for a registry: write there.
    public static func directory(certsDir: String, registry: String) -> String? {
        // A valid name has no `/`, no `..` and does not start with `.`: it is one entry directly in certsDir.
        guard RegistryName.isValid(registry), !registry.contains("/"), !registry.contains("\\"),
              let first = certsDir.split(separator: ":").first.map(String.init) else { return nil }
        return first.hasSuffix("/") ? first + registry : first + "/" + registry
    }

    public static func render(registry: String, server: String, mirrors: [Mirror]) -> String {
        var out = "# Written by regwatch-agent: mirror order for \(registry). Edit the agent's config, not this file.\n"
        out += "server = \(quote(server))\n"
        for m in mirrors {
            out += "\n[host.\(quote(m.url))]\n"
            out += "  capabilities = \(m.trusted ? "[\"pull\", \"resolve\"]" : "[\"pull\"]")\n"
            if let ca = m.ca { out += "  ca = \(quote(ca))\n" }
        }
        return out
    }

    /// Renders and reads back: the hosts in order with the right capabilities, or an error.
    public static func renderVerified(registry: String, server: String, mirrors: [Mirror], path: String) throws(RuntimeConfigError) -> String {
        let text = render(registry: registry, server: server, mirrors: mirrors)
        let parsed = try ContainerdHosts.parse(text, registry: registry, path: path)
        guard parsed.hosts.map(\.url) == mirrors.map(\.url), parsed.server == server,
              zip(parsed.hosts, mirrors).allSatisfy({ $0.capabilities.contains("resolve") == $1.trusted && !$0.skipVerify }) else {
            throw RuntimeConfigError(path: path, message: "internal error: hosts.toml did not read back as written")
        }
        return text
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                // TOML allows no raw control character in a basic string, DEL included.
                if u.value < 0x20 || u.value == 0x7F {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
