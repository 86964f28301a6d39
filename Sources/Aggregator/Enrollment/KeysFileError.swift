import RegwatchShared

/// What can go wrong with the enrollment files in `keys.dir` (agents, pending joins, tokens). Each
/// message is one line naming the host, key, token or file at fault.
public enum KeysFileError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidHost(String)
    case hostHasAnotherKey(host: String, key: String)
    case keyBelongsToAnotherHost(key: String, host: String)
    case keyRevoked(String)
    case notEnrolled(String)
    case noPendingJoin(String)
    case severalPendingJoins(host: String, count: Int)
    case invalidTokenName(String)
    case tokenExists(String)
    case noSuchToken(String)
    case unreadable(path: String, reason: String)

    public var code: String {
        switch self {
        case .invalidHost: "enrollment.invalid_host"
        case .hostHasAnotherKey: "enrollment.host_has_another_key"
        case .keyBelongsToAnotherHost: "enrollment.key_belongs_to_another_host"
        case .keyRevoked: "enrollment.key_revoked"
        case .notEnrolled: "enrollment.not_enrolled"
        case .noPendingJoin: "enrollment.no_pending_join"
        case .severalPendingJoins: "enrollment.several_pending_joins"
        case .invalidTokenName: "enrollment.invalid_token_name"
        case .tokenExists: "enrollment.token_exists"
        case .noSuchToken: "enrollment.no_such_token"
        case .unreadable: "enrollment.file_unreadable"
        }
    }

    public var description: String {
        switch self {
        case .invalidHost(let h): "\"\(h.prefix(64))\" is not a valid host id (letters, digits, . _ -; at most \(HostID.maxLength))"
        case .hostHasAnotherKey(let h, let k): "host \(h) is already enrolled with key \(k); a reinstalled node: regwatch-aggregator keys accept --host \(h) --replace"
        case .keyBelongsToAnotherHost(let k, let h): "key \(k) is already enrolled for host \(h); one key per host"
        case .keyRevoked(let k): "key \(k) was revoked; a revoked key is never enrolled again (the agent makes a new one)"
        case .notEnrolled(let h): "host \(h) has no active enrollment"
        case .noPendingJoin(let h): "no pending join for host \(h) (see regwatch-aggregator keys pending)"
        case .severalPendingJoins(let h, let n): "\(n) keys are pending for host \(h); name one with --key (see regwatch-aggregator keys pending)"
        case .invalidTokenName(let n): "\"\(n.prefix(64))\" is not a token name (letters, digits, . _ -; at most 63)"
        case .tokenExists(let n): "a token named \(n) exists already; revoke it or pick another name"
        case .noSuchToken(let n): "no token named \(n) (see regwatch-aggregator tokens list)"
        case .unreadable(let p, let r): "\(p): \(r)"
        }
    }
}
