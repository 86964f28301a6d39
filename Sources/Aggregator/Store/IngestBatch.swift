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
            didSet { columns = nil }
        }
        /// Aggregator clock: staleness and probe history use it, so agent clock skew cannot hide a host.
        public var receivedAt: Date
        /// The report's column texts, encoded when the entry is made (ingest makes it on the decoding
        /// task, so the single committing thread does not spend time on it); nil once `report` changes.
        var columns: Columns?

        public init(hostID: String, seq: UInt64, report: Report, receivedAt: Date) {
            self.hostID = hostID
            self.seq = seq
            self.report = report
            self.receivedAt = receivedAt
            columns = Columns(report)
        }
    }

    /// A report's text columns as stored: `host.labels`, `host.mirrorPools` and `host.eventSources`
    /// (``StoreJSON``), `host.probes` but for each class's since (``ProbeStateText/Latest``) and
    /// `probe_report.probes` (``ProbeStateText/samples(_:)``).
    struct Columns: Sendable {
        var labels: [UInt8]
        var mirrorPools: [UInt8]
        var eventSources: [UInt8]
        var latest: ProbeStateText.Latest
        var samples: [UInt8]

        init(_ r: Report) {
            labels = StoreJSON.bytes(r.host.labels)
            mirrorPools = StoreJSON.bytes(r.mirrorPools)
            eventSources = StoreJSON.bytes(r.eventSources)
            latest = ProbeStateText.Latest(r.probes)
            samples = ProbeStateText.samples(r.probes)
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

    /// Distinct elements by `same`, quadratic: reports carry a handful of probes and runtimes.
    static func distinctCount<T>(_ items: [T], _ same: (T, T) -> Bool) -> Int {
        var n = 0
        for i in items.indices where !items[..<i].contains(where: { same($0, items[i]) }) { n += 1 }
        return n
    }
}
