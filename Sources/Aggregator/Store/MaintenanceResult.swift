/// What one `maintain` run did, for logs and metrics.
public struct MaintenanceResult: Sendable, Equatable {
    /// `probe_minute` rows written (one per endpoint x minute rolled).
    public var minutesWritten = 0
    public var samplesDeleted = 0
    public var minutesDeleted = 0
    public var eventsDeleted = 0

    public init() {}
}
