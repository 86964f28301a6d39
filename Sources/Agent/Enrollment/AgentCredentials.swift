import Crypto
import RegwatchShared

/// The key material an agent runs with, loaded from the files its config names.
public struct AgentCredentials: Sendable {
    public var security: DealerSecurity
    /// The pinned command-signing key; nil only in insecure mode without one configured.
    public var commandVerifier: CommandVerifier?

    /// Loads every key file named in `config`. Errors name the config file, the key and the key file.
    public static func load(_ config: AgentConfig, configFile: String) throws(ConfigError) -> AgentCredentials {
        let agg = config.aggregator
        func wrap<T>(_ key: String, _ body: () throws(KeyFileError) -> T) throws(ConfigError) -> T {
            do { return try body() } catch {
                throw ConfigError(file: configFile, key: "aggregator.\(key)", message: error.description)
            }
        }
        var verifier: CommandVerifier?
        if let path = agg.signingKey {
            verifier = CommandVerifier(key: try wrap("signingKey") { () throws(KeyFileError) in try KeyFiles.readSigningPublicKey(path) })
        }
        if agg.insecure {
            return AgentCredentials(security: .insecure, commandVerifier: verifier)
        }
        guard let serverPath = agg.serverKey, let clientPath = agg.clientKey else {
            throw ConfigError(file: configFile, key: "aggregator", message: "serverKey and clientKey are required unless insecure is true")
        }
        let server = try wrap("serverKey") { () throws(KeyFileError) in try KeyFiles.readCurvePublicKey(serverPath) }
        let client = try wrap("clientKey") { () throws(KeyFileError) in try KeyFiles.readCurveKeyPair(clientPath) }
        return AgentCredentials(security: .curve(serverKey: server, clientKeys: client), commandVerifier: verifier)
    }

    /// The pinned server key alone (for `validate` before the agent's own key exists).
    public static func serverKey(_ config: AgentConfig, configFile: String) throws(ConfigError) -> CurvePublicKey? {
        guard let path = config.aggregator.serverKey else { return nil }
        do { return try KeyFiles.readCurvePublicKey(path) } catch {
            throw ConfigError(file: configFile, key: "aggregator.serverKey", message: error.description)
        }
    }

    /// The transport configuration for this agent; `routingID` while it joins.
    public func dealerConfiguration(_ config: AgentConfig, routingID: String? = nil) -> DealerClient.Configuration {
        DealerClient.Configuration(endpoints: config.aggregator.endpoints, hostID: config.host.id, security: security, limits: config.transport, routingID: routingID)
    }
}

/// `regwatch-agent keys generate`: writes a fresh CURVE key pair.
public enum AgentKeyGenerator {
    public struct Written: Sendable, Equatable {
        public var secretPath: String
        public var publicPath: String
        public var publicKey: String
    }

    /// Writes `DIR/agent.key` (0600) and `DIR/agent.pub`. Refuses to overwrite an existing secret.
    public static func generate(into dir: String) throws -> Written {
        let pair = try CurveKeyPair.generate()
        let secret = "\(dir)/\(KeyFiles.agentSecret)"
        let pub = "\(dir)/\(KeyFiles.agentPublic)"
        try KeyDirectory.ensure(dir)
        try AtomicFile.write(Array(KeyFiles.curveSecretText(pair, role: "agent").utf8), to: secret, mode: 0o600, exclusive: true)
        try AtomicFile.write(Array(KeyFiles.curvePublicText(pair.publicKey, role: "agent").utf8), to: pub, mode: 0o644)
        return Written(secretPath: secret, publicPath: pub, publicKey: pair.publicKey.z85)
    }
}
