import FoundationEssentials
import Glibc
import RegwatchShared

/// The two read routes of the aggregator's HTTP API the simulator watches, over a plain HTTP/1.1 GET to a
/// loopback or literal IPv4 address (the simulator never resolves a name).
public struct AggregatorAPI: Sendable {
    public struct Outage: Decodable, Sendable {
        public var id: Int
        public var kind: String
        public var state: String
        public var endpoint: String?
        public var startedAt: Date
    }

    public struct Failover: Decodable, Sendable {
        public var generation: UInt64
        public var state: String
        public var acked: Int
        public var pending: Int
        public var rejected: Int
    }

    let host: String
    let port: UInt16

    /// `base` is `http://ADDRESS:PORT` with an IPv4 address or `localhost`.
    public init(base: String) throws(SimError) {
        guard base.hasPrefix("http://") else { throw .badArgument("--api", "\"\(base)\" must be http://ADDRESS:PORT") }
        let rest = base.dropFirst(7).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        let parts = rest.split(separator: ":").map(String.init)
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw .badArgument("--api", "\"\(base)\" must be http://ADDRESS:PORT") }
        var addr = in_addr()
        let host = parts[0] == "localhost" ? "127.0.0.1" : parts[0]
        guard inet_pton(AF_INET, host, &addr) == 1 else {
            throw .badArgument("--api", "\"\(parts[0])\" is not an IPv4 address (the simulator resolves no names)")
        }
        self.host = host
        self.port = port
    }

    public func outages() throws(SimError) -> [Outage] { try get("/api/v1/outages", as: [Outage].self) }
    public func failovers() throws(SimError) -> [Failover] { try get("/api/v1/failovers", as: [Failover].self) }

    func get<T: Decodable>(_ path: String, as: T.Type) throws(SimError) -> T {
        let body = try fetch(path)
        do { return try JSONCoding.decoder().decode(T.self, from: Data(body)) } catch {
            throw .transport("GET \(path): the answer is not the expected JSON: \(WireCodec.describe(error))")
        }
    }

    /// The body of a 200 answer; anything else throws.
    func fetch(_ path: String) throws(SimError) -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .transport("socket: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sa.sin_addr)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw .transport("GET http://\(host):\(port)\(path): \(String(cString: strerror(errno)))") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw .transport("GET \(path): send failed")
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { throw .transport("GET \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            answer.append(contentsOf: buffer[0..<n])
        }
        guard let split = answer.firstRange(of: Array("\r\n\r\n".utf8)) else { throw .transport("GET \(path): no HTTP header in the answer") }
        let head = String(decoding: answer[..<split.lowerBound], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 200") || head.hasPrefix("HTTP/1.0 200") else {
            throw .transport("GET \(path): \(head.split(separator: "\r\n").first ?? "no status line")")
        }
        var body = Array(answer[split.upperBound...])
        if head.lowercased().contains("transfer-encoding: chunked") { body = Self.unchunk(body) }
        return body
    }

    static func unchunk(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < data.count {
            guard let eol = data[i...].firstRange(of: [13, 10]) else { break }
            let size = Int(String(decoding: data[i..<eol.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16) ?? 0
            if size == 0 { break }
            let start = eol.upperBound
            let end = min(data.count, start + size)
            out.append(contentsOf: data[start..<end])
            i = end + 2
        }
        return out
    }
}
