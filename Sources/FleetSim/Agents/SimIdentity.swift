import FoundationEssentials
import RegwatchShared

/// One emulated agent's lasting identity: host id, labels, CURVE key, and whether that key is enrolled
/// with the aggregator whose server key is recorded.
public struct SimIdentity: Sendable {
    public var hostID: String
    public var labels: [String: String]
    public var keys: CurveKeyPair
    /// The server key this agent's key was accepted by; nil: not enrolled (it joins with the token).
    public var enrolledWith: String?

    public init(hostID: String, labels: [String: String], keys: CurveKeyPair, enrolledWith: String?) {
        self.hostID = hostID
        self.labels = labels
        self.keys = keys
        self.enrolledWith = enrolledWith
    }
}

/// The fleet's identities in `STATE_DIR/agents.tsv` (mode 0600: it holds secret keys), one line per agent:
/// `host-id TAB public TAB secret TAB enrolled-server-key-or-dash`. Kept between runs so a fleet of
/// 10,000 enrolls once, as a real one does.
public struct SimIdentityFile: Sendable {
    public let stateDir: String
    public var path: String { stateDir + "/agents.tsv" }

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    /// The first `count` identities: read from the file, and made (not enrolled) where it has fewer.
    public func load(count: Int, prefix: String, zones: Int, egresses: Int) throws(SimError) -> [SimIdentity] {
        var known: [String: SimIdentity] = [:]
        if let data = FileManager.default.contents(atPath: path) {
            for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
                let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard f.count == 4, let pair = try? CurveKeyPair(secretZ85: f[2]), pair.publicKey.z85 == f[1] else {
                    throw .file(path, "line \(n + 1) is not `host TAB public TAB secret TAB server-key` with a matching key pair")
                }
                known[f[0]] = SimIdentity(hostID: f[0], labels: [:], keys: pair, enrolledWith: f[3] == "-" ? nil : f[3])
            }
        }
        var out: [SimIdentity] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let id = Self.hostID(prefix: prefix, index: i)
            var identity: SimIdentity
            if let k = known[id] {
                identity = k
            } else {
                do { identity = SimIdentity(hostID: id, labels: [:], keys: try CurveKeyPair.generate(), enrolledWith: nil) } catch {
                    throw .transport("cannot make a CURVE key: \(error)")
                }
            }
            identity.labels = ["zone": "zone-\(i % max(1, zones) + 1)", "egress": "egress-\(i % max(1, egresses) + 1)", "role": "sim"]
            out.append(identity)
        }
        return out
    }

    /// Writes these identities (atomically; the directory is made 0700 if missing). Lines of other host ids
    /// already in the file are kept: a smaller run must not lose the keys a larger one enrolled.
    public func save(_ identities: [SimIdentity]) throws(SimError) {
        let given = Set(identities.map(\.hostID))
        var text = ""
        if let data = FileManager.default.contents(atPath: path) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let id = line.split(separator: "\t").first, !given.contains(String(id)) else { continue }
                text += line + "\n"
            }
        }
        for i in identities {
            text += "\(i.hostID)\t\(i.keys.publicKey.z85)\t\(i.keys.secretZ85)\t\(i.enrolledWith ?? "-")\n"
        }
        do {
            try KeyDirectory.ensure(stateDir)
            try AtomicFile.write(Array(text.utf8), to: path, mode: 0o600)
        } catch {
            throw .file(path, "cannot write: \(error)")
        }
    }

    public static func hostID(prefix: String, index: Int) -> String {
        let n = String(index + 1)
        return "\(prefix)-\(String(repeating: "0", count: max(0, 5 - n.count)))\(n)"
    }
}
