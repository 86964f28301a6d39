import FoundationEssentials
import RegwatchShared

/// The agent's own CURVE key pair: made on first start when the agent joins with a bootstrap token, so
/// no key is ever copied to or from a host. The secret never leaves the file it is written to.
public enum AgentIdentity {
    /// Where `keys rotate` leaves the next key for the running agent: beside the key, `.next` appended.
    public static func nextKeyPath(_ clientKey: String) -> String { clientKey + ".next" }
    /// Where the running agent leaves why a rotation was refused.
    public static func refusedPath(_ clientKey: String) -> String { clientKey + ".next.refused" }

    /// Generates the key pair at `aggregator.clientKey` when it does not exist and a bootstrap token is
    /// configured (file 0600, directory created 0700). Returns true when it wrote one.
    @discardableResult
    public static func ensureKey(_ config: AgentConfig, configFile: String) throws(ConfigError) -> Bool {
        let agg = config.aggregator
        guard !agg.insecure, agg.bootstrapToken != nil, let path = agg.clientKey, !FileManager.default.fileExists(atPath: path) else { return false }
        do {
            try write(try CurveKeyPair.generate(), to: path)
        } catch {
            throw ConfigError(file: configFile, key: "aggregator.clientKey", message: "\(path): cannot write a new key: \(error)")
        }
        return true
    }

    /// Writes a secret key file (0600), creating its directory 0700; never replaces one.
    public static func write(_ pair: CurveKeyPair, to path: String) throws {
        try KeyDirectory.ensure(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        try AtomicFile.write(Array(KeyFiles.curveSecretText(pair, role: "agent").utf8), to: path, mode: 0o600, exclusive: true)
    }

    /// Reads the bootstrap token file: one line, surrounding whitespace ignored.
    public static func readToken(_ path: String) throws(KeyFileError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyFileError(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        let token = String(decoding: data, as: UTF8.self).trimmed()
        guard !token.isEmpty, !token.contains(where: \.isNewline) else { throw KeyFileError(path: path, reason: "expected one line holding the bootstrap token") }
        return token
    }
}
