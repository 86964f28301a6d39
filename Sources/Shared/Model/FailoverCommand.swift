import FoundationEssentials

/// The desired mirror order for one host, as decided by the aggregator's failover controller.
///
/// It travels only inside a ``SignedFailoverCommand``: the agent acts on it after the signature, generation,
/// expiry and its local policy all pass.
public struct FailoverDirective: Codable, Sendable, Hashable {
    public var generation: UInt64
    /// The leadership term of the aggregator that issued it (0 from an aggregator without terms). An
    /// agent refuses a command from a term older than one it already obeyed: a deposed leader's late
    /// directive cannot undo its successor's.
    public var epoch: UInt64
    public var issuedAt: Date
    public var expiresAt: Date
    /// The host id this directive is for; an agent rejects one addressed to someone else.
    public var target: String
    /// Mirrors per registry in the order the runtime should try them.
    public var mirrors: [String: [String]]
    public var reason: String

    public init(generation: UInt64, epoch: UInt64 = 0, issuedAt: Date, expiresAt: Date, target: String, mirrors: [String: [String]], reason: String = "") {
        self.generation = generation
        self.epoch = epoch
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.target = target
        self.mirrors = mirrors
        self.reason = reason
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generation = try c.decode(UInt64.self, forKey: .generation)
        epoch = try c.decodeIfPresent(UInt64.self, forKey: .epoch) ?? 0
        issuedAt = try c.decode(Date.self, forKey: .issuedAt)
        expiresAt = try c.decode(Date.self, forKey: .expiresAt)
        target = try c.decode(String.self, forKey: .target)
        mirrors = try c.decode([String: [String]].self, forKey: .mirrors)
        reason = try c.decodeIfPresent(String.self, forKey: .reason) ?? ""
    }
}

/// What an agent has obeyed: the leadership term and the generation of the last command it applied.
/// A command is newer only when neither goes back.
public struct CommandVersion: Sendable, Hashable, CustomStringConvertible {
    public var epoch: UInt64
    public var generation: UInt64

    public init(epoch: UInt64 = 0, generation: UInt64) {
        self.epoch = epoch
        self.generation = generation
    }

    public var description: String { epoch == 0 ? "generation \(generation)" : "epoch \(epoch) generation \(generation)" }
}

/// A failover directive with an Ed25519 signature over its exact encoded bytes.
///
/// The directive is carried as base64 of the bytes that were signed, not re-encoded by the receiver,
/// so an agent that does not know a newer field still verifies the signature over what was really signed.
public struct SignedFailoverCommand: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.failoverCommand
    /// Base64 of the JSON encoding of a ``FailoverDirective``.
    public var payload: String
    /// Base64 of the Ed25519 signature over the payload bytes.
    public var signature: String

    public init(payload: String, signature: String) {
        self.payload = payload
        self.signature = signature
    }
}

/// The agent's answer to a command: applied, ignored (not newer than what it has) or rejected with a reason.
public struct FailoverAck: Codable, Sendable, Hashable, WireBody {
    public static let messageType = MessageType.failoverAck

    public enum Outcome: String, Codable, Sendable, Hashable {
        case applied, ignored, rejected, failed, rolledBack = "rolled_back"
    }

    public var generation: UInt64
    public var outcome: Outcome
    public var reason: String
    /// The generation in force on the agent after handling the command.
    public var appliedGeneration: UInt64
    /// The leadership term of that generation (0: none). A leader whose term is older learns from it
    /// that its database lost the term (restored, or replaced), and starts a term above it.
    public var appliedEpoch: UInt64 = 0

    public init(generation: UInt64, outcome: Outcome, reason: String = "", appliedGeneration: UInt64, appliedEpoch: UInt64 = 0) {
        self.appliedEpoch = appliedEpoch
        self.generation = generation
        self.outcome = outcome
        self.reason = reason
        self.appliedGeneration = appliedGeneration
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generation = try c.decode(UInt64.self, forKey: .generation)
        outcome = try c.decode(Outcome.self, forKey: .outcome)
        reason = try c.decodeIfPresent(String.self, forKey: .reason) ?? ""
        appliedGeneration = try c.decodeIfPresent(UInt64.self, forKey: .appliedGeneration) ?? 0
        appliedEpoch = try c.decodeIfPresent(UInt64.self, forKey: .appliedEpoch) ?? 0
    }
}
