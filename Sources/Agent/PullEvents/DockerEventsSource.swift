import Foundation
import Logging
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// Successful pulls from Docker Engine's `GET /events` stream (filtered to image pulls) over the unix
/// socket. dockerd reports only successes there; failures come from its log (``JournalSource``,
/// ``LogFileSource``).
///
/// When dockerd restarts the stream ends and the source reconnects with backoff; when the socket does
/// not exist the source is `absent` and looks again every `recheckAbsent`.
public struct DockerEventsSource: PullEventSource {
    public let socketPath: String
    public let recheckAbsent: Duration
    let logger: Logger
    public var name: String { "docker-events" }

    public init(socketPath: String, recheckAbsent: Duration = .seconds(60), logger: Logger) {
        self.socketPath = socketPath
        self.recheckAbsent = recheckAbsent
        self.logger = logger
    }

    /// `filters={"type":["image"],"event":["pull"]}`, URL-encoded.
    static let request = Array(
        ("GET /events?filters=%7B%22type%22%3A%5B%22image%22%5D%2C%22event%22%3A%5B%22pull%22%5D%7D HTTP/1.1\r\n"
            + "Host: docker\r\nUser-Agent: regwatch-agent\r\nAccept: application/json\r\n\r\n").utf8)

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

    enum StreamEnd { case ended(receivedHead: Bool), failed(String) }

    func stream(into sink: PullEventSink) async -> StreamEnd {
        let fd: Int32
        switch Self.connect(socketPath) {
        case .success(let s): fd = s
        case .failure(let reason): return .failed(reason)
        }
        let sent = Self.request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == Self.request.count else {
            close(fd)
            return .failed("cannot send to \(socketPath): \(String(cString: strerror(errno)))")
        }
        var http = HTTPStreamDecoder()
        var lines = LineSplitter()
        let decoder = JSONDecoder()
        for await chunk in FDChunkStream.chunks(fd: fd, name: "rw-docker-ev") {
            let body: [UInt8]
            do {
                body = try http.feed(chunk)
            } catch {
                return .failed("unexpected answer from \(socketPath) GET /events: \(error)")
            }
            if http.status != nil { sink.setStatus(name, .active, "streaming \(socketPath)") }
            sink.emit(lines.feed(body).compactMap { line -> PullEvent? in
                guard !line.isEmpty else { return nil }
                guard let raw = try? decoder.decode(DockerEvent.self, from: Data(line.utf8)) else {
                    logger.debug("unreadable docker event", metadata: ["line": "\(line.prefix(200))"])
                    return nil
                }
                return raw.pullEvent()
            })
            if http.finished { break }
        }
        return .ended(receivedHead: http.status != nil)
    }

    enum ConnectResult { case success(Int32), failure(String) }

    static func connect(_ path: String) -> ConnectResult {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure("socket(): \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            return .failure("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
            dst[bytes.count] = 0
        }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure("cannot connect to \(path): \(reason)")
        }
        return .success(fd)
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
