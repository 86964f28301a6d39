import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import RegwatchShared

/// The two read routes of the aggregator's HTTP API the simulator watches, at a loopback or literal IPv4
/// address (the simulator never resolves a name).
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

    public func outages() async throws(SimError) -> [Outage] { try await get("/api/v1/outages", as: [Outage].self) }
    public func failovers() async throws(SimError) -> [Failover] { try await get("/api/v1/failovers", as: [Failover].self) }

    func get<T: Decodable>(_ path: String, as: T.Type) async throws(SimError) -> T {
        var request = URLRequest(url: URL(string: "http://\(host):\(port)\(path)")!)
        request.timeoutInterval = 5
        let data: Data, response: URLResponse
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw .transport("GET http://\(host):\(port)\(path): \(error.localizedDescription)")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
            throw .transport("GET \(path): status \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
        do { return try JSONCoding.decoder().decode(T.self, from: data) } catch {
            throw .transport("GET \(path): the answer is not the expected JSON: \(WireCodec.describe(error))")
        }
    }
}
