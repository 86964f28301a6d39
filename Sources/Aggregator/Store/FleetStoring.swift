import Foundation
import RegwatchShared

/// What ingest, correlation, failover, the HTTP API and the CLI need from the fleet database, so the same
/// services run on the embedded SQLite file (``FleetStore``, the default) or on a PostgreSQL database that
/// several aggregators share (``PostgresFleetStore``).
///
/// Every method is synchronous and thread-safe, and either commits all it writes or nothing. The contract
/// each backend keeps, checked by one test suite run against both:
/// - `commit` returns only after its transaction committed, so an event is acknowledged only once stored;
///   a batch holding an event already stored skips it and still acknowledges it;
/// - the latest state of a host comes from its newest report (by `cycleStartedAt`), whatever the order of
///   arrival;
/// - queries answer the same on both backends, row for row and in the same order.
public protocol FleetStoring: AnyObject, Sendable {
    /// Where the data lives, for logs and `status`: a file path, or a PostgreSQL URL without its password.
    var location: String { get }
    /// Whether other aggregators may write the same data (PostgreSQL): acks and connection flags then
    /// come from them too, and nothing may assume it is alone.
    var isShared: Bool { get }

    // Ingest and connection state
    @discardableResult
    func commit(_ batch: IngestBatch) throws(StoreError) -> IngestResult
    func setConnected(hostID: String, connected: Bool) throws(StoreError)
    func setAllDisconnected() throws(StoreError)
    @discardableResult
    func markSilentHostsDisconnected(now: Date, intervals: Double) throws(StoreError) -> Int
    @discardableResult
    func maintain(now: Date, rawRetention: TimeInterval, minuteRetention: TimeInterval, eventRetention: TimeInterval) throws(StoreError) -> MaintenanceResult
    func forget(hosts ids: [String]) throws(StoreError)

    // Fleet queries
    func hosts(now: Date, staleAfter: Int, id: String?) throws(StoreError) -> [HostRow]
    func endpoints(now: Date, staleAfter: Int) throws(StoreError) -> [EndpointRow]
    func latestStates(now: Date, staleAfter: Int, host hostID: String?) throws(StoreError) -> [LatestStateRow]
    func probeMinutes(since: Date, until: Date?, endpoint: String?) throws(StoreError) -> [ProbeMinuteRow]
    func status(now: Date, staleAfter: Int) throws(StoreError) -> StoreStatus
    func runtimeStates(host: String) throws(StoreError) -> [RuntimeConfigState]
    func pullEvents(host: String, failuresOnly: Bool, limit: Int) throws(StoreError) -> [PullEvent]
    func recordHeadroom(_ lowest: [String: Int], at now: Date) throws(StoreError)
    func headroom(since: Date) throws(StoreError) -> [HeadroomMinuteRow]

    // Outages
    @discardableResult
    func record(_ transitions: [OutageTransition], active: [OutageKey: ActiveOutage]) throws(StoreError) -> [OutageRow]
    func activeOutageStates() throws(StoreError) -> [ActiveOutage]
    func outages(activeOnly: Bool, limit: Int) throws(StoreError) -> [OutageRow]
    func outages(since: Date, limit: Int) throws(StoreError) -> [OutageRow]

    // Failover
    func failoverState() throws(StoreError) -> FailoverState?
    /// Saves the controller's state; with `epoch`, only while that is still the current leadership term
    /// (in the same transaction), else ``StoreError/deposed(path:epoch:current:)`` and nothing is written.
    func saveFailover(_ state: FailoverState, now: Date, epoch: UInt64?) throws(StoreError)
    func recordFailoverAck(host: String, ack: FailoverAck, at: Date) throws(StoreError)
    func lastFailoverAcks() throws(StoreError) -> [String: FailoverInputs.Ack]
    func failoverHosts(now: Date, staleAfter: Int, acks: [String: FailoverInputs.Ack]) throws(StoreError) -> [FailoverInputs.Host]
    func recoveredOutages(since: Date) throws(StoreError) -> [FailoverInputs.RecoveredOutage]

    // Leadership terms
    /// Starts the next leadership term for `holder` and returns its epoch (1 for the first).
    func beginTerm(holder: String, now: Date) throws(StoreError) -> UInt64
    /// Raises the current term's epoch to at least `minimum` (its holder stays) and returns the epoch:
    /// agents obeyed a term this database no longer has (it was restored or replaced).
    func raiseTerm(to minimum: UInt64) throws(StoreError) -> UInt64
    /// The current term, nil before the first.
    func currentTerm() throws(StoreError) -> LeaderTerm?

    /// Gives back what the backend holds besides the data (SQLite: folds the WAL into the file). Called once
    /// at shutdown, after the last commit.
    func close()
}

extension FleetStoring {
    public func hosts(now: Date, staleAfter: Int) throws(StoreError) -> [HostRow] {
        try hosts(now: now, staleAfter: staleAfter, id: nil)
    }

    public func latestStates(now: Date, staleAfter: Int) throws(StoreError) -> [LatestStateRow] {
        try latestStates(now: now, staleAfter: staleAfter, host: nil)
    }

    public func probeMinutes(since: Date, endpoint: String? = nil) throws(StoreError) -> [ProbeMinuteRow] {
        try probeMinutes(since: since, until: nil, endpoint: endpoint)
    }

    @discardableResult
    public func markSilentHostsDisconnected(now: Date) throws(StoreError) -> Int {
        try markSilentHostsDisconnected(now: now, intervals: 2)
    }

    public func pullEvents(host: String, failuresOnly: Bool) throws(StoreError) -> [PullEvent] {
        try pullEvents(host: host, failuresOnly: failuresOnly, limit: 20)
    }

    public func outages(activeOnly: Bool) throws(StoreError) -> [OutageRow] {
        try outages(activeOnly: activeOnly, limit: 500)
    }

    public func outages(since: Date) throws(StoreError) -> [OutageRow] {
        try outages(since: since, limit: 500)
    }

    public func saveFailover(_ state: FailoverState, now: Date) throws(StoreError) {
        try saveFailover(state, now: now, epoch: nil)
    }
}
