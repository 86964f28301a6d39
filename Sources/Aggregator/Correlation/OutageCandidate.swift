import Foundation
import RegwatchShared

/// An outage as found in one evaluation window, before the engine decides whether it has held long
/// enough to open. Detection is stateless; everything about time lives in ``CorrelationEngine``.
public struct OutageCandidate: Codable, Sendable, Hashable {
    public var key: OutageKey
    /// The most common failing class among the affected hosts' observations; nil when nothing failed
    /// (a certificate that still works but expires soon).
    public var errorClass: ErrorClass?
    /// Hosts that show the problem (and counted toward it).
    public var affectedHosts: Int
    /// Hosts that were in a position to show it (the denominator of the share).
    public var totalHosts: Int
    /// Up to ``CorrelationSettings/evidenceLimit`` samples, ordered by host then endpoint.
    public var evidence: [OutageEvidence]
    /// When the evidence became sufficient, as far as the latest reports tell (aggregator clock): the
    /// arrival of the report that completed the quorum, or later. The engine dates a new candidate from
    /// it instead of from the evaluation that first saw it, so a window's wait between a report and the
    /// next evaluation does not delay the opening. Nil: from the evaluation.
    public var observedAt: Date?

    public init(
        key: OutageKey, errorClass: ErrorClass?, affectedHosts: Int, totalHosts: Int, evidence: [OutageEvidence] = [], observedAt: Date? = nil
    ) {
        self.observedAt = observedAt
        self.key = key
        self.errorClass = errorClass
        self.affectedHosts = affectedHosts
        self.totalHosts = totalHosts
        self.evidence = evidence
    }

    public var kind: OutageKind { key.kind }

    /// Whether `other` differs in what an operator or the outage table shows as the outage's size and
    /// cause. Evidence text (timings inside curl messages) changes every window and is not a change.
    public func differsMaterially(from other: OutageCandidate) -> Bool {
        errorClass != other.errorClass || affectedHosts != other.affectedHosts || totalHosts != other.totalHosts
    }
}
