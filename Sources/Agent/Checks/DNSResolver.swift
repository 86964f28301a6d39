import FoundationEssentials
#if canImport(Glibc)
import Glibc
import RegwatchShared
#endif

/// Name resolution the way the runtimes do it (getaddrinfo, so `/etc/hosts` and `resolv.conf` apply),
/// telling NXDOMAIN (`EAI_NONAME`) from a failing resolver and from one that does not answer in time.
public struct DNSResolver: Sendable {
    public enum Outcome: Sendable, Equatable {
        case addresses([String])
        case nxdomain(String)
        case failure(String)
        case timeout
    }

    public var timeout: Duration

    public init(timeout: Duration = .seconds(5)) {
        self.timeout = timeout
    }

    /// Resolves `host`; IP literals answer at once. getaddrinfo blocks, so it runs on its own thread and is
    /// abandoned (not cancelled: glibc cannot) when the timeout passes.
    public func resolve(_ host: String) async -> (Outcome, latencyMs: Double) {
        if Self.isIPLiteral(host) { return (.addresses([host]), 0) }
        let start = ContinuousClock.now
        let outcome = await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Outcome?, Never>) in
                    OSThread.detach(name: "regwatch-dns", stackSize: 256 << 10) { c.resume(returning: Self.getaddrinfoBlocking(host)) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return Outcome.timeout
            }
            let first = await group.next()!
            group.cancelAll()
            return first!
        }
        let elapsed = ContinuousClock.now - start
        return (outcome, Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func getaddrinfoBlocking(_ host: String) -> Outcome {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        defer { if let result { freeaddrinfo(result) } }
        guard rc == 0 else {
            let message = "lookup \(host): \(String(cString: gai_strerror(rc)))"
            // EAI_NODATA (-5, glibc-only, not imported): the name exists without addresses; treated like NXDOMAIN.
            return rc == EAI_NONAME || rc == -5 ? .nxdomain(message) : .failure(message)
        }
        var addresses: [String] = []
        var node = result
        while let n = node {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if n.pointee.ai_family == AF_INET {
                n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { var a = $0.pointee.sin_addr; inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count)) }
            } else if n.pointee.ai_family == AF_INET6 {
                n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { var a = $0.pointee.sin6_addr; inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count)) }
            }
            let s = String(cString: buffer)
            if !s.isEmpty, !addresses.contains(s) { addresses.append(s) }
            node = n.pointee.ai_next
        }
        return addresses.isEmpty ? .failure("lookup \(host): no addresses") : .addresses(addresses)
    }
}
