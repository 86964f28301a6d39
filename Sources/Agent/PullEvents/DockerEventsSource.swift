import FoundationEssentials
import Logging
import RegwatchShared
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Successful pulls from Docker Engine's `GET /events` stream (filtered to image pulls) over the unix
/// socket, read through libcurl like the engine's `/info` (one HTTP client in the agent). dockerd reports
/// only successes there; failures come from its log (``JournalSource``, ``LogFileSource``).
///
/// When dockerd restarts the stream ends and the source reconnects with backoff; when the socket does
/// not exist the source is `absent` and looks again every `recheckAbsent`.
public struct DockerEventsSource: PullEventSource {
    public let socketPath: String
    public let recheckAbsent: Duration
    let runner: any HTTPTransport
    let logger: Logger
    public var name: String { "docker-events" }

    public init(socketPath: String, recheckAbsent: Duration = .seconds(60), runner: any HTTPTransport, logger: Logger) {
        self.socketPath = socketPath
        self.recheckAbsent = recheckAbsent
        self.runner = runner
        self.logger = logger
    }

    /// `filters={"type":["image"],"event":["pull"]}`, URL-encoded; the host name is not used on a unix socket.
    static let url = "http://docker/events?filters=%7B%22type%22%3A%5B%22image%22%5D%2C%22event%22%3A%5B%22pull%22%5D%7D"

    public func run(into sink: PullEventSink) async {
        var backoff = ReconnectBackoff(initialMs: 500, maxMs: 30_000)
        while !Task.isCancelled {
            var st = stat()
            guard stat(socketPath, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else {
                sink.setStatus(name, .absent, "no Docker socket at \(socketPath)")
                try? await Task.sleep(for: recheckAbsent)
                continue
            }
            switch await stream(into: sink) {
            case .ended(let receivedHead):
                if receivedHead { backoff.reset() }
                sink.setStatus(name, .failing, "dockerd closed the event stream (restarting?)")
            case .failed(let reason):
                sink.setStatus(name, .failing, reason)
            }
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(backoff.next()))
        }
    }

    enum StreamEnd: Equatable { case ended(receivedHead: Bool), failed(String) }

    /// One `/events` request, until dockerd ends it, it fails, or the task is cancelled.
    func stream(into sink: PullEventSink) async -> StreamEnd {
        let lines = DockerEventLines(logger: logger)
        let head = Mutex<Int?>(nil)
        let name = name, socketPath = socketPath
        let stream = CurlStream(
            onHeaders: { status in
                head.withLock { $0 = status }
                if (200..<300).contains(status) { sink.setStatus(name, .active, "streaming \(socketPath)") }
            },
            onData: { chunk in
                guard let status = head.withLock({ $0 }), (200..<300).contains(status) else { return }
                sink.emit(lines.feed(chunk))
            })
        var request = CurlRequest(url: Self.url)
        request.unixSocket = socketPath
        request.timeoutMs = 0
        request.headers = ["Accept: application/json"]
        request.stream = stream
        let response = await withTaskCancellationHandler {
            await runner.perform(request)
        } onCancel: {
            stream.cancel()
        }
        let status = head.withLock { $0 }
        if let status, !(200..<300).contains(status) {
            return .failed("unexpected answer from \(socketPath) GET /events: HTTP \(status)")
        }
        if status == nil, !response.succeeded {
            return .failed("cannot read \(socketPath) GET /events: \(response.curlMessage)")
        }
        return .ended(receivedHead: status != nil)
    }
}

/// Splits Docker's event stream into JSON lines and decodes the pulls among them. Fed from the transfer
/// thread, so it keeps its partial line under a lock.
final class DockerEventLines: Sendable {
    private let splitter = Mutex(LineSplitter())
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func feed(_ chunk: [UInt8]) -> [PullEvent] {
        let lines = splitter.withLock { $0.feed(chunk) }
        let decoder = JSONDecoder()
        return lines.compactMap { line -> PullEvent? in
            guard !line.isEmpty else { return nil }
            guard let raw = try? decoder.decode(DockerEvent.self, from: Data(line.utf8)) else {
                logger.debug("unreadable docker event", metadata: ["line": "\(line.prefix(200))"])
                return nil
            }
            return raw.pullEvent()
        }
    }
}

/// One message of Docker's event stream (the fields regwatch reads; `status`/`id` are the pre-1.22 names).
struct DockerEvent: Decodable {
    struct Actor: Decodable {
        var id: String?
        var attributes: [String: String]?
        enum CodingKeys: String, CodingKey { case id = "ID", attributes = "Attributes" }
    }

    var type: String?
    var action: String?
    var actor: Actor?
    var status: String?
    var id: String?
    var time: Int64?
    var timeNano: Int64?

    enum CodingKeys: String, CodingKey {
        case type = "Type", action = "Action", actor = "Actor", status, id, time, timeNano
    }

    func pullEvent() -> PullEvent? {
        guard (action ?? status) == "pull", (type ?? "image") == "image" else { return nil }
        guard let raw = actor?.id ?? id, !raw.isEmpty else { return nil }
        let at: Date = timeNano.map { Date(timeIntervalSince1970: Double($0) / 1e9) } ?? time.map { Date(timeIntervalSince1970: Double($0)) } ?? Date()
        let ref = ImageReference(raw)
        return PullEvent(
            seq: 0, at: at, image: ref?.description ?? raw, registry: ref?.registry ?? "", result: .success,
            errorClass: .ok, detail: "", source: "docker-events"
        )
    }
}
