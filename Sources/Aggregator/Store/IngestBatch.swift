import Foundation
import RegwatchShared

/// Everything ingest collected since the last commit, written by `FleetStore.commit` in one transaction.
///
/// Why batches: one SQLite transaction per report costs an fsync-bound commit each; thousands of agents
/// reporting every 30 s need many reports per commit. Pull events ride in the same transaction so they
/// can be acknowledged as soon as it commits.
///
/// `hostID` is the authenticated sender (the host enrolled with the CURVE key), not `report.host.id`:
/// the ingest layer checks they agree before a report gets here.
public struct IngestBatch: Sendable {
    public struct ReportEntry: Sendable {
        public var hostID: String
        /// The transport sequence number of the report, kept as `host.lastReportSeq` for debugging.
        public var seq: UInt64
        public var report: Report {
            didSet { hostJSON = nil; samplesText = nil; latest = nil }
        }
        /// Aggregator clock: staleness and probe history use it, so agent clock skew cannot hide a host.
        public var receivedAt: Date
        /// The host row's JSON columns, encoded when the entry is made (ingest makes it on the decoding
        /// task, so the single committing thread does not spend time on it); nil once `report` changes.
        var hostJSON: HostJSON?
        /// `probe_report.probes` (``ProbeStateText/samples(_:)``), made with `hostJSON` for the same reason.
        var samplesText: String?
        /// `host.probes` but for each class's since (``ProbeStateText/Latest``), made with `hostJSON` too.
        var latest: ProbeStateText.Latest?

        public init(hostID: String, seq: UInt64, report: Report, receivedAt: Date) {
            self.hostID = hostID
            self.seq = seq
            self.report = report
            self.receivedAt = receivedAt
            hostJSON = HostJSON(report)
            samplesText = ProbeStateText.samples(report.probes)
            latest = ProbeStateText.Latest(report.probes)
        }
    }

    /// `host.labels`, `host.mirrorPools` and `host.eventSources` as stored (``StoreJSON``).
    struct HostJSON: Sendable {
        var labels: String
        var mirrorPools: String
        var eventSources: String

        init(_ r: Report) {
            labels = StoreJSON.object(r.host.labels)
            mirrorPools = StoreJSON.object(r.mirrorPools)
            eventSources = StoreJSON.array(r.eventSources)
        }
    }

    public struct EventEntry: Sendable {
        public var hostID: String
        public var events: [PullEvent]
        public var receivedAt: Date

        public init(hostID: String, events: [PullEvent], receivedAt: Date = Date()) {
            self.hostID = hostID
            self.events = events
            self.receivedAt = receivedAt
        }
    }

    public var reports: [ReportEntry]
    public var events: [EventEntry]

    public init(reports: [ReportEntry] = [], events: [EventEntry] = []) {
        self.reports = reports
        self.events = events
    }

    public var isEmpty: Bool { reports.isEmpty && events.isEmpty }

    public mutating func append(report: Report, hostID: String, seq: UInt64, receivedAt: Date) {
        reports.append(ReportEntry(hostID: hostID, seq: seq, report: report, receivedAt: receivedAt))
    }

    public mutating func append(events: [PullEvent], hostID: String, receivedAt: Date = Date()) {
        self.events.append(EventEntry(hostID: hostID, events: events, receivedAt: receivedAt))
    }
}
