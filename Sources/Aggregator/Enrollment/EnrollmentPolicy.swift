import Foundation
import RegwatchShared

/// Decides what happens to one `join`: a pure function of the request and what the keys directory
/// holds, so every rule is tested without files or sockets. ``EnrollmentService`` gathers the inputs,
/// asks, and carries the decision out.
public struct EnrollmentPolicy: Sendable {
    public var mode: AggregatorConfig.Enrollment.Mode
    /// Whole-match pattern for host ids accepted by token; nil: any valid host id.
    public var hostPattern: String?

    public init(mode: AggregatorConfig.Enrollment.Mode, hostPattern: String?) {
        self.mode = mode
        self.hostPattern = hostPattern
    }

    /// What is known about the joining key and its host id.
    public struct Inputs: Sendable {
        public var request: JoinRequest
        /// The key the connection authenticated with (the join must name the same one).
        public var key: CurvePublicKey
        public var tables: EnrollmentStore.Tables
        public var rejected: Set<CurvePublicKey>
        public var token: TokenStore.Verdict

        public init(request: JoinRequest, key: CurvePublicKey, tables: EnrollmentStore.Tables, rejected: Set<CurvePublicKey>, token: TokenStore.Verdict) {
            self.request = request
            self.key = key
            self.tables = tables
            self.rejected = rejected
            self.token = token
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Enroll now (`result` accepted) or confirm an enrollment that exists (`already_enrolled`).
        case accept(result: String, via: String)
        /// Wait for an operator.
        case pending(reason: String)
        case refuse(result: String, reason: String)
    }

    public func decide(_ x: Inputs) -> Decision {
        let host = x.request.host.id
        guard HostID.isValid(host), x.request.publicKey == x.key.z85 else {
            return .refuse(result: "malformed", reason: "the join names another key than the connection's, or an invalid host id")
        }
        if let enrolledHost = x.tables.active[x.key] {
            if enrolledHost == host { return .accept(result: "already_enrolled", via: "") }
            return .refuse(result: "malformed", reason: "this key is enrolled for host \(enrolledHost), not \(host)")
        }
        if x.tables.revoked.contains(x.key) { return .refuse(result: "key_revoked", reason: "this key was revoked; the agent needs a new key") }
        if x.rejected.contains(x.key) { return .refuse(result: "key_rejected", reason: "an operator rejected this key") }
        let hostTaken = x.tables.active.values.contains(host)
        switch mode {
        case .manual:
            if hostTaken { return .pending(reason: "host \(host) is enrolled with another key: accept with --replace if the node was reinstalled") }
            return .pending(reason: "enrollment.mode is manual: regwatch-aggregator keys accept --host \(host)")
        case .token:
            guard case .valid(let name) = x.token else { return .refuse(result: x.token.result, reason: x.token.reason) }
            // A valid token never replaces an identity: that takes an operator.
            if hostTaken { return .pending(reason: "host \(host) is enrolled with another key: accept with --replace if the node was reinstalled") }
            if let hostPattern, !Self.matches(host, pattern: hostPattern) {
                return .pending(reason: "host id \(host) does not match enrollment.hostPattern")
            }
            return .accept(result: "accepted", via: "token \(name)")
        }
    }

    static func matches(_ host: String, pattern: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: host)) != nil
    }

    /// How the pending entry describes the token a join presented.
    public static func describe(_ verdict: TokenStore.Verdict) -> String {
        switch verdict {
        case .valid(let name): "valid (\(name))"
        case .missing: "none"
        default: verdict.result.replacingOccurrences(of: "token_", with: "")
        }
    }
}

/// At most `rate` joins a second, in bursts of up to `rate`: a token bucket on the caller's clock.
public struct JoinRateLimiter: Sendable {
    public let rate: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant?

    public init(perSecond rate: Int) {
        self.rate = Double(rate)
        tokens = Double(rate)
    }

    public mutating func allow(now: ContinuousClock.Instant) -> Bool {
        if let last { tokens = min(rate, tokens + (now - last).seconds * rate) }
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
