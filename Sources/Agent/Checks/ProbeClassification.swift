import FoundationEssentials
import Glibc
import RegwatchShared

/// Turns libcurl's view of a failed or finished transfer into the shared error classes.
enum ProbeClassification {
    // CURLcode values (stable ABI numbers).
    static let couldntResolveProxy: Int32 = 5
    static let couldntResolveHost: Int32 = 6
    static let couldntConnect: Int32 = 7
    static let operationTimedOut: Int32 = 28
    static let sslConnectError: Int32 = 35
    static let gotNothing: Int32 = 52
    static let sendError: Int32 = 55
    static let recvError: Int32 = 56
    static let peerFailedVerification: Int32 = 60
    static let proxy: Int32 = 97

    /// The class of a transfer that did not complete (curlCode != 0).
    /// `targetPort`: where the request should have gone; a failed connection to another port went to a
    /// proxy (curl's message does not say so).
    static func transportFailure(_ r: CurlResponse, https: Bool, targetPort: Int? = nil) -> ErrorClass {
        if let targetPort, let tried = attemptedPort(r), tried != targetPort,
           [couldntConnect, operationTimedOut, gotNothing, recvError, sendError].contains(r.curlCode) {
            return .proxyFailure
        }
        switch r.curlCode {
        case couldntResolveProxy, proxy: return .proxyFailure
        case couldntResolveHost: return .dnsFailure
        case couldntConnect:
            if r.curlMessage.lowercased().contains("proxy") { return .proxyFailure }
            switch r.osErrno {
            case ECONNREFUSED: return .tcpRefused
            case ENETUNREACH, EHOSTUNREACH: return .networkUnreachable
            case ETIMEDOUT: return .tcpTimeout
            default: return .tcpRefused
            }
        case operationTimedOut:
            if r.connectMs == 0 { return .tcpTimeout }
            if https && r.tlsMs == 0 { return .tlsHandshake }
            return .timeout
        case sslConnectError: return .tlsHandshake
        case peerFailedVerification: return .tlsUntrusted
        case gotNothing, sendError, recvError:
            if r.curlMessage.contains("CONNECT") || r.curlMessage.lowercased().contains("proxy") { return .proxyFailure }
            if https && r.tlsMs == 0 { return .tlsHandshake }
            // The connection broke after it was made (reset, closed without an answer).
            let fromText = ErrorClassifier.classify(message: r.curlMessage)
            return fromText == .unknown ? .tcpRefused : fromText
        default:
            return ErrorClassifier.classify(message: r.curlMessage)
        }
    }

    /// The port curl last tried: `CURLINFO_PRIMARY_PORT`, or from `Failed to connect to H port P` when
    /// the connection never came up (curl leaves the info at 0 then).
    static func attemptedPort(_ r: CurlResponse) -> Int? {
        if r.primaryPort != 0 { return r.primaryPort }
        guard let match = r.curlMessage.firstMatch(of: #/ port (\d+)/#) else { return nil }
        return Int(match.1)
    }

    /// The class of a certificate curl refused (`SSL certificate problem: …`, `no alternative certificate
    /// subject name matches …`), by the shared message rules; anything else unverifiable is untrusted.
    static func certificateFailure(_ message: String) -> ErrorClass {
        let cls = ErrorClassifier.classify(message: message)
        return [.tlsExpired, .tlsHostname, .tlsUntrusted].contains(cls) ? cls : .tlsUntrusted
    }

    /// Days until `Expire date` (e.g. `Dec 29 00:23:11 2026 GMT`), and the date.
    static func expiry(_ leaf: [String: String], now: Date) -> (days: Int, date: Date)? {
        guard let text = leaf["Expire date"], let d = certificateDate(text) else { return nil }
        return (Int((d.timeIntervalSince(now) / 86400).rounded(.down)), d)
    }

    /// Parses curl's certificate dates, `Dec 29 00:23:11 2026 GMT` (OpenSSL) or `2026-12-29 00:23:11 GMT`,
    /// by hand: a DateFormatter would load ICU (megabytes of resident memory) into every agent.
    static func certificateDate(_ text: String) -> Date? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 3 else { return nil }
        var year = 0, month = 0, day = 0
        let timeIndex: Int
        if parts[0].contains("-") {
            let ymd = parts[0].split(separator: "-").compactMap { Int($0) }
            guard ymd.count == 3 else { return nil }
            (year, month, day) = (ymd[0], ymd[1], ymd[2])
            timeIndex = 1
        } else {
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            guard parts.count >= 4, let m = months.firstIndex(of: String(parts[0])), let d = Int(parts[1]), let y = Int(parts[3]) else { return nil }
            (year, month, day) = (y, m + 1, d)
            timeIndex = 2
        }
        let hms = parts[timeIndex].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3, (1...12).contains(month), (1...31).contains(day), hms[0] < 24, hms[1] < 60, hms[2] < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm): no calendar object, no time zone database.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Date(timeIntervalSince1970: TimeInterval(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]))
    }

    /// `100;w=21600` -> (100, 21600).
    static func rateLimitValue(_ header: String?) -> (Int, Int?)? {
        guard let header else { return nil }
        let parts = header.split(separator: ";")
        guard let value = parts.first.flatMap({ Int($0.trimmingSpaces()) }) else { return nil }
        let window = parts.dropFirst().first { $0.trimmingSpaces().hasPrefix("w=") }
            .flatMap { Int($0.trimmingSpaces().dropFirst(2)) }
        return (value, window)
    }
}
