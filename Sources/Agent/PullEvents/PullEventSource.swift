import FoundationEssentials
import Logging
import RegwatchShared
import Synchronization

/// Somewhere pull events come from: Docker's `/events` stream, the systemd journal, a log file.
///
/// A source runs until its task is cancelled. It never ends the agent: when what it reads is not on
/// this host it says so once (``PullEventSink/setStatus(_:_:_:)`` with `.absent`) and rechecks rarely;
/// when it fails it retries with backoff.
public protocol PullEventSource: Sendable {
    var name: String { get }
    func run(into sink: PullEventSink) async
}

/// Where sources deliver: a bounded stream of events (their `seq` is assigned by the spool) and the
/// latest status of every source, which each report carries.
public final class PullEventSink: Sendable {
    /// Events in the groups they were read in (one poll of a file, one chunk of a stream), so the spool
    /// writes and syncs once per group rather than once per event.
    public let events: AsyncStream<[PullEvent]>
    let continuation: AsyncStream<[PullEvent]>.Continuation
    private let statuses = Mutex<[String: EventSourceStatus]>([:])
    private let dropped = Atomic<Int>(0)
    let logger: Logger

    public init(capacity: Int = 4096, logger: Logger) {
        (events, continuation) = AsyncStream<[PullEvent]>.makeStream(bufferingPolicy: .bufferingOldest(capacity))
        self.logger = logger
    }

    /// Hands events to the publisher; counted and dropped when the publisher is far behind.
    public func emit(_ events: [PullEvent]) {
        guard !events.isEmpty else { return }
        if case .dropped(let lost) = continuation.yield(events) {
            let total = dropped.add(lost.count, ordering: .relaxed).newValue
            // The first loss and then about every thousandth event lost: the spool is not keeping up.
            if total == lost.count || total / 1000 != (total - lost.count) / 1000 {
                logger.warning("pull events dropped: the spool is far behind its sources", metadata: ["dropped": "\(lost.count)", "dropped.total": "\(total)"])
            }
        }
    }

    /// Records a source's state; logs only transitions, so an absent source is reported once.
    public func setStatus(_ name: String, _ state: EventSourceStatus.State, _ detail: String = "") {
        let previous = statuses.withLock { s -> EventSourceStatus? in
            defer { s[name] = EventSourceStatus(name: name, state: state, detail: detail) }
            return s[name]
        }
        guard previous?.state != state else { return }
        let meta: Logger.Metadata = ["source": "\(name)", "detail": "\(detail)"]
        switch state {
        case .active: logger.info("pull-event source active", metadata: meta)
        case .absent: logger.notice("pull-event source absent on this host; rechecking rarely", metadata: meta)
        case .failing, .unknown: logger.warning("pull-event source failing; retrying with backoff", metadata: meta)
        }
    }

    public var statusList: [EventSourceStatus] {
        statuses.withLock { $0.values.sorted { $0.name < $1.name } }
    }

    public func finish() { continuation.finish() }
}

/// Builds the pull-event sources the configuration asks for.
public enum PullEventSources {
    /// `runner` carries Docker's `/events` stream (the agent's one libcurl multi handle).
    public static func make(_ config: AgentConfig, runner: any HTTPTransport, logger: Logger) -> [any PullEventSource] {
        var sources: [any PullEventSource] = []
        let events = config.events
        if events.docker, let docker = config.runtime.docker {
            sources.append(DockerEventsSource(socketPath: docker.socket, recheckAbsent: events.absentRecheck, runner: runner, logger: logger))
        }
        if !events.journalUnits.isEmpty {
            let root = config.hostRoot
            sources.append(JournalSource(units: events.journalUnits, recheckAbsent: events.absentRecheck,
                                         systemdMarker: root.path("/run/systemd/system"), journalRoot: root.isHost ? nil : root.prefix, logger: logger))
        }
        for file in events.files {
            sources.append(LogFileSource(path: file, pollInterval: events.filePoll, logger: logger))
        }
        return sources
    }
}

extension PullEvent {
    /// A failure event from a log line the parser recognised; the spool assigns `seq`.
    init(failure: PullLogParser.Failure, at: Date, source: String) {
        self.init(
            seq: 0, at: at, image: failure.image ?? "", registry: failure.registry ?? "", endpoint: failure.endpoint,
            result: .failure, errorClass: failure.errorClass, detail: failure.detail, source: source
        )
    }
}

extension Duration {
    var milliseconds: Int {
        Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000)
    }
}
