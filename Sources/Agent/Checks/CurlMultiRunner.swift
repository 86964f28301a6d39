import CCurl
import FoundationEssentials
import Glibc
import RegwatchShared
import Synchronization

/// Runs many HTTP requests concurrently on one libcurl multi handle, on a dedicated thread, so a probe
/// cycle over all endpoints costs one thread however many endpoints there are, and never blocks
/// Swift's cooperative pool.
public final class CurlMultiRunner: Sendable {
    private struct Pending: @unchecked Sendable {
        var request: CurlRequest
        var continuation: CheckedContinuation<CurlResponse, Never>
    }

    private final class Shared: Sendable {
        let queue = Mutex<(pending: [Pending], stopped: Bool)>(([], false))
        let multi: UnsafeSendableHandle
        init(multi: UnsafeMutableRawPointer) { self.multi = UnsafeSendableHandle(multi) }
    }

    private let shared: Shared

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public init() {
        _ = Self.globalInit
        let multi = curl_multi_init()!
        shared = Shared(multi: multi)
        let shared = shared
        OSThread.detach(name: "regwatch-curl") { CurlMultiRunner.loop(shared) }
    }

    deinit {
        shared.queue.withLock { $0.stopped = true }
        curl_multi_wakeup(shared.multi.pointer)
    }

    /// Performs one request; many may be in flight at once.
    public func perform(_ request: CurlRequest) async -> CurlResponse {
        await withCheckedContinuation { c in
            shared.queue.withLock { $0.pending.append(Pending(request: request, continuation: c)) }
            curl_multi_wakeup(shared.multi.pointer)
        }
    }

    private static func loop(_ shared: Shared) {
        let multi = shared.multi.pointer
        var inFlight: [UnsafeMutableRawPointer: Transfer] = [:]
        while true {
            let (new, stopped) = shared.queue.withLock { q -> ([Pending], Bool) in
                let p = q.pending
                q.pending = []
                return (p, q.stopped)
            }
            if stopped && inFlight.isEmpty && new.isEmpty { break }
            for p in new {
                let t = Transfer(request: p.request, continuation: p.continuation)
                inFlight[t.handle] = t
                curl_multi_add_handle(multi, t.handle)
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let msg = curl_multi_info_read(multi, &left) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle, let t = inFlight.removeValue(forKey: easy) else { continue }
                let code = msg.pointee.data.result
                curl_multi_remove_handle(multi, easy)
                t.finish(code: code)
            }
            if !inFlight.isEmpty || !stopped {
                // Idle, nothing can happen until perform() or deinit calls curl_multi_wakeup: no reason to wake
                // every second on every node. With transfers, curl shortens the wait to its own timers.
                curl_multi_poll(multi, nil, 0, inFlight.isEmpty ? 60_000 : 1000, nil)
            }
        }
        curl_multi_cleanup(multi)
    }
}

struct UnsafeSendableHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { pointer = p }
}

/// One easy handle and the buffers its callbacks fill. Lives on the runner thread only.
final class Transfer {
    let handle: UnsafeMutableRawPointer
    let request: CurlRequest
    let continuation: CheckedContinuation<CurlResponse, Never>
    var response = CurlResponse()
    var headerList: UnsafeMutablePointer<curl_slist>?
    var resolveList: UnsafeMutablePointer<curl_slist>?
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

    init(request: CurlRequest, continuation: CheckedContinuation<CurlResponse, Never>) {
        self.request = request
        self.continuation = continuation
        handle = curl_easy_init()!
        let h = handle
        ccurl_easy_setopt_string(h, CURLOPT_URL, request.url)
        ccurl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMs)
        ccurl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, request.timeoutMs)
        ccurl_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
        // Every probe measures its own connect and handshake (and reads the certificate): no reuse.
        ccurl_easy_setopt_long(h, CURLOPT_FRESH_CONNECT, 1)
        ccurl_easy_setopt_long(h, CURLOPT_FORBID_REUSE, 1)
        ccurl_easy_setopt_string(h, CURLOPT_USERAGENT, "regwatch-agent")
        ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYPEER, request.verify ? 1 : 0)
        ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYHOST, request.verify ? 2 : 0)
        ccurl_easy_setopt_long(h, CURLOPT_CERTINFO, 1)
        if request.method == .head { ccurl_easy_setopt_long(h, CURLOPT_NOBODY, 1) }
        if let basic = request.basicAuth {
            ccurl_easy_setopt_long(h, CURLOPT_HTTPAUTH, 1) // CURLAUTH_BASIC (a macro Swift does not import)
            ccurl_easy_setopt_string(h, CURLOPT_USERPWD, basic)
        }
        if let ca = request.caFile { ccurl_easy_setopt_string(h, CURLOPT_CAINFO, ca) }
        if let socket = request.unixSocket { ccurl_easy_setopt_string(h, CURLOPT_UNIX_SOCKET_PATH, socket) }
        if let proxy = request.proxy { ccurl_easy_setopt_string(h, CURLOPT_PROXY, proxy) }
        if let noProxy = request.noProxy { ccurl_easy_setopt_string(h, CURLOPT_NOPROXY, noProxy) }
        for header in request.headers { headerList = curl_slist_append(headerList, header) }
        if let headerList { ccurl_easy_setopt_pointer(h, CURLOPT_HTTPHEADER, headerList) }
        for entry in request.resolve { resolveList = curl_slist_append(resolveList, entry) }
        if let resolveList { ccurl_easy_setopt_pointer(h, CURLOPT_RESOLVE, resolveList) }
        errorBuffer.withUnsafeMutableBufferPointer { ccurl_easy_setopt_pointer(h, CURLOPT_ERRORBUFFER, $0.baseAddress) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_easy_setopt_pointer(h, CURLOPT_HEADERDATA, me)
        ccurl_easy_setopt_callback(h, CURLOPT_HEADERFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
            if line.hasPrefix("HTTP/") { t.response.headers = [:] } // a new response (e.g. after a 100 or a proxy CONNECT)
            if line == "\r\n", let stream = t.request.stream {
                var status = 0
                if ccurl_easy_getinfo_long(t.handle, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK, status >= 200 { stream.onHeaders(status) }
            }
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmed()
                t.response.headers[name] = value
            }
            return n
        }
        ccurl_easy_setopt_pointer(h, CURLOPT_WRITEDATA, me)
        ccurl_easy_setopt_callback(h, CURLOPT_WRITEFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            if let stream = t.request.stream {
                if stream.isCancelled { return 0 }
                stream.onData(Array(UnsafeRawBufferPointer(start: ptr, count: n)))
                return n
            }
            let room = t.request.maxBody - t.response.body.count
            if room > 0 { t.response.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: min(n, room))) }
            return n
        }
        if request.stream != nil {
            ccurl_easy_setopt_long(h, CURLOPT_NOPROGRESS, 0)
            ccurl_easy_setopt_pointer(h, CURLOPT_XFERINFODATA, me)
            ccurl_easy_setopt_xferinfo(h) { user, _, _, _, _ in
                Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue().request.stream?.isCancelled == true ? 1 : 0
            }
        }
    }

    func finish(code: CURLcode) {
        let h = handle
        var r = response
        r.curlCode = Int32(code.rawValue)
        let message = String(cString: errorBuffer)
        r.curlMessage = message.isEmpty ? String(cString: curl_easy_strerror(code)) : message
        var long = 0
        if ccurl_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &long) == CURLE_OK { r.status = long }
        if ccurl_easy_getinfo_long(h, CURLINFO_OS_ERRNO, &long) == CURLE_OK { r.osErrno = Int32(long) }
        func ms(_ info: CURLINFO) -> Double {
            var v: curl_off_t = 0
            ccurl_easy_getinfo_off(h, info, &v)
            return Double(v) / 1000
        }
        r.nameLookupMs = ms(CURLINFO_NAMELOOKUP_TIME_T)
        r.connectMs = ms(CURLINFO_CONNECT_TIME_T)
        r.tlsMs = ms(CURLINFO_APPCONNECT_TIME_T)
        r.ttfbMs = ms(CURLINFO_STARTTRANSFER_TIME_T)
        r.totalMs = ms(CURLINFO_TOTAL_TIME_T)
        var ip: UnsafePointer<CChar>?
        if ccurl_easy_getinfo_string(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK, let ip { r.primaryIP = String(cString: ip) }
        if ccurl_easy_getinfo_long(h, CURLINFO_PRIMARY_PORT, &long) == CURLE_OK { r.primaryPort = long }
        if request.url.hasPrefix("https://"), r.tlsMs > 0 || r.status > 0 {
            var info: UnsafeMutablePointer<curl_certinfo>?
            if ccurl_easy_getinfo_certinfo(h, &info) == CURLE_OK, let info, info.pointee.num_of_certs > 0, let first = info.pointee.certinfo[0] {
                var node: UnsafeMutablePointer<curl_slist>? = first
                while let n = node {
                    let entry = String(cString: n.pointee.data)
                    if let colon = entry.firstIndex(of: ":") {
                        r.leafCertificate[String(entry[..<colon])] = String(entry[entry.index(after: colon)...])
                    }
                    node = n.pointee.next
                }
            }
        }
        curl_slist_free_all(headerList)
        curl_slist_free_all(resolveList)
        curl_easy_cleanup(h)
        continuation.resume(returning: r)
    }
}
