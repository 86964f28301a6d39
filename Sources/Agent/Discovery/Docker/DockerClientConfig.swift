import FoundationEssentials

/// A Docker client `config.json`, or a containers `auth.json` (the same shape): stored credentials per
/// registry, a default credential helper (`credsStore`) and helpers per registry (`credHelpers`).
public struct DockerClientConfig: Sendable, Equatable {
    public struct Login: Sendable, Equatable {
        public var username: String
        /// The password or token; never printed.
        public var secret: String
        /// An OAuth refresh token (`identitytoken`, or a helper's `<token>` user): exchanged at the registry's
        /// token service, never sent as basic auth.
        public var isIdentityToken = false
    }

    /// By the key as written (`https://index.docker.io/v1/`, `registry.example:5000`).
    public var logins: [String: Login]
    public var credsStore: String?
    public var credHelpers: [String: String]

    public static func parse(_ bytes: [UInt8], path: String) throws(RuntimeConfigError) -> DockerClientConfig {
        guard let root = JSONValue.parse(bytes)?.object else {
            throw RuntimeConfigError(path: path, message: "not a Docker config.json (expected a JSON object)")
        }
        var logins: [String: Login] = [:]
        for (key, entry) in root["auths"]?.object ?? [:] {
            // An identity token wins over `auth` (`az acr login` writes both, with an empty password).
            if let token = entry["identitytoken"]?.string, !token.isEmpty {
                logins[key] = Login(username: "(identity token)", secret: token, isIdentityToken: true)
            } else if let auth = entry["auth"]?.string, !auth.isEmpty {
                guard let decoded = Data(base64Encoded: auth), let text = String(data: decoded, encoding: .utf8),
                      let colon = text.firstIndex(of: ":") else {
                    throw RuntimeConfigError(path: path, message: "auths.\(key).auth is not base64 of user:password")
                }
                logins[key] = Login(username: String(text[..<colon]), secret: String(text[text.index(after: colon)...]))
            } else if let user = entry["username"]?.string, let password = entry["password"]?.string {
                logins[key] = Login(username: user, secret: password)
            }
        }
        var helpers: [String: String] = [:]
        for (key, value) in root["credHelpers"]?.object ?? [:] {
            guard let name = value.string, CredentialHelper.isValidName(name) else {
                throw RuntimeConfigError(path: path, message: "credHelpers.\(key) must name a helper (docker-credential-NAME)")
            }
            helpers[key] = name
        }
        let store = root["credsStore"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        if let store, !CredentialHelper.isValidName(store) {
            throw RuntimeConfigError(path: path, message: "credsStore \"\(store)\" is not a helper name")
        }
        return DockerClientConfig(logins: logins, credsStore: store, credHelpers: helpers)
    }

    /// The registry a key stands for: `https://index.docker.io/v1/` is `docker.io`; a scheme and path go.
    public static func registry(forKey key: String) -> String {
        var k = Substring(key)
        if let r = k.firstRange(of: "://") { k = k[r.upperBound...] }
        if let slash = k.firstIndex(of: "/") { k = k[..<slash] }
        let host = String(k)
        return ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"].contains(host) ? "docker.io" : host
    }

    /// What a helper is asked for: Docker Hub's historical key, else the registry's host.
    public static func serverURL(forRegistry registry: String) -> String {
        registry == "docker.io" ? "https://index.docker.io/v1/" : registry
    }
}
