import FoundationEssentials

/// `--registry NAME[=URL]`: one more registry for `check` and `diagnose` (the upstream defaults as in the config).
public struct RegistryArgument: Sendable, Equatable {
    public var name: String
    public var upstream: String?

    /// nil with a one-line reason when the argument is not a registry.
    public static func parse(_ text: String) -> Result<RegistryArgument, RegistryArgumentError> {
        let name: String, url: String?
        if let eq = text.firstIndex(of: "=") {
            name = String(text[..<eq])
            url = String(text[text.index(after: eq)...])
        } else {
            name = text
            url = nil
        }
        guard RegistryName.isValid(name) else {
            return .failure(.init(message: "--registry: \"\(name)\" is not a registry host name (e.g. registry.example:5000)"))
        }
        if let url, !URLRules.isHTTPURL(url) {
            return .failure(.init(message: "--registry \(name)=…: expected an http(s) URL, got \"\(url)\""))
        }
        return .success(RegistryArgument(name: name, upstream: url))
    }

    /// The registry as the config would have it.
    public var registry: AgentConfig.Registry {
        AgentConfig.Registry(name: name, upstream: upstream ?? AgentConfig.Registry.defaultUpstream(name),
                             probeImage: nil, rateLimit: name == "docker.io", credentials: nil, mirrors: [])
    }
}

public struct RegistryArgumentError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
