import Foundation

/// A leadership term: the epoch every command of the leader carries, who holds it and since when.
public struct LeaderTerm: Codable, Sendable, Equatable {
    public var epoch: UInt64
    public var holder: String
    public var since: Date

    public init(epoch: UInt64, holder: String, since: Date) {
        self.epoch = epoch
        self.holder = holder
        self.since = since
    }
}
