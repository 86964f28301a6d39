import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A thin owner of one libzmq socket. Not thread-safe, like the socket itself: exactly one thread uses
/// it at a time (the transport's I/O thread once started).
package final class ZMQSocket: @unchecked Sendable {
    package let handle: UnsafeMutableRawPointer
    private var closed = false

    package init(context: ZMQContext, type: Int32) throws(TransportError) {
        guard let h = zmq_socket(context.handle, type) else { throw .last("zmq_socket") }
        handle = h
    }

    deinit { close() }

    package func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    package func set(_ option: Int32, _ value: Int32) throws(TransportError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    package func set(_ option: Int32, _ value: Int64) throws(TransportError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    package func set(_ option: Int32, bytes: [UInt8]) throws(TransportError) {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    package func set(_ option: Int32, string: String) throws(TransportError) {
        try set(option, bytes: Array(string.utf8))
    }

    package func getInt32(_ option: Int32) -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        zmq_getsockopt(handle, option, &v, &size)
        return v
    }

    func bind(_ endpoint: String) throws(TransportError) {
        guard zmq_bind(handle, endpoint) == 0 else {
            throw .invalidEndpoint(endpoint, reason: String(cString: zmq_strerror(zmq_errno())))
        }
    }

    package func connect(_ endpoint: String) throws(TransportError) {
        guard zmq_connect(handle, endpoint) == 0 else {
            throw .invalidEndpoint(endpoint, reason: String(cString: zmq_strerror(zmq_errno())))
        }
    }

    package func disconnect(_ endpoint: String) {
        _ = zmq_disconnect(handle, endpoint)
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to the chosen port).
    var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(zeroTerminated: buffer)
    }

    /// Sends a multipart message without blocking. Returns false when libzmq would block (HWM reached or,
    /// with `ZMQ_IMMEDIATE`, no completed connection); throws on any other error.
    func send(_ frames: [[UInt8]]) throws(TransportError) -> Bool {
        for (i, frame) in frames.enumerated() {
            let flags = ZMQ_DONTWAIT | (i < frames.count - 1 ? ZMQ_SNDMORE : 0)
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if rc < 0 {
                let e = zmq_errno()
                if e == EAGAIN && i == 0 { return false }
                if e == EINTR && i == 0 { return false }
                throw .zmq(operation: "zmq_send", errno: e, message: String(cString: zmq_strerror(e)))
            }
        }
        return true
    }

    /// Sends two frames (routing id + payload, or delimiter-free payload pairs) without an array of arrays.
    func send(_ first: [UInt8], _ second: [UInt8]) throws(TransportError) -> Bool {
        let rc = first.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, ZMQ_DONTWAIT | ZMQ_SNDMORE) }
        if rc < 0 {
            let e = zmq_errno()
            if e == EAGAIN || e == EINTR { return false }
            throw .zmq(operation: "zmq_send", errno: e, message: String(cString: zmq_strerror(e)))
        }
        let rc2 = second.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, ZMQ_DONTWAIT) }
        if rc2 < 0 { throw .last("zmq_send") }
        return true
    }

    /// Sends one single-frame message without blocking; false when libzmq would block.
    package func send(_ payload: [UInt8]) throws(TransportError) -> Bool {
        let rc = payload.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, ZMQ_DONTWAIT) }
        if rc < 0 {
            let e = zmq_errno()
            if e == EAGAIN || e == EINTR { return false }
            throw .zmq(operation: "zmq_send", errno: e, message: String(cString: zmq_strerror(e)))
        }
        return true
    }

    /// ROUTER fast path: one routing-id frame and one payload frame, the payload appended to `buffer`
    /// (a batch shares one buffer). Messages of any other shape are read and discarded. Nil when nothing
    /// is waiting. `lastPeer` caches the previous routing id's String (consecutive messages mostly share one).
    /// `fd` is the connection's socket (libzmq's `ZMQ_SRCFD` property), for closing one peer's connection.
    func receiveRouted(into buffer: inout [UInt8], readUserID: Bool, lastPeer: inout (bytes: [UInt8], string: String)) -> (peer: String, range: Range<Int>, userID: String?, fd: Int32)? {
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        while true {
            guard zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT) >= 0 else { return nil }
            let id = UnsafeRawBufferPointer(start: zmq_msg_data(&msg), count: zmq_msg_size(&msg))
            let same = id.count == lastPeer.bytes.count && (id.count == 0 || lastPeer.bytes.withUnsafeBytes { memcmp($0.baseAddress!, id.baseAddress!, id.count) == 0 })
            if !same {
                lastPeer = ([UInt8](id), String(decoding: id, as: UTF8.self))
            }
            guard zmq_msg_more(&msg) != 0, zmq_msg_recv(&msg, handle, 0) >= 0 else { return nil }
            if zmq_msg_more(&msg) != 0 {
                // Not [routing id, payload]: drain the rest and look at the next message.
                while zmq_msg_more(&msg) != 0, zmq_msg_recv(&msg, handle, 0) >= 0 {}
                continue
            }
            let start = buffer.count
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: zmq_msg_data(&msg), count: zmq_msg_size(&msg)))
            let userID = readUserID ? zmq_msg_gets(&msg, "User-Id").map { String(cString: $0) } : nil
            return (lastPeer.string, start..<buffer.count, userID, zmq_msg_get(&msg, ZMQ_SRCFD))
        }
    }

    /// Receives one multipart message without blocking; nil when none is waiting.
    /// `userID` is the ZAP-assigned `User-Id` property of the connection it came from.
    package func receive() throws(TransportError) -> (frames: [[UInt8]], userID: String?)? {
        var frames: [[UInt8]] = []
        var userID: String?
        var msg = zmq_msg_t()
        while true {
            zmq_msg_init(&msg)
            let rc = zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT)
            if rc < 0 {
                let e = zmq_errno()
                zmq_msg_close(&msg)
                if (e == EAGAIN || e == EINTR) && frames.isEmpty { return nil }
                throw .zmq(operation: "zmq_msg_recv", errno: e, message: String(cString: zmq_strerror(e)))
            }
            let size = zmq_msg_size(&msg)
            if size > 0, let data = zmq_msg_data(&msg) {
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            // The ROUTER's routing-id frame is made locally and carries no metadata; the peer's frames do.
            if userID == nil, let uid = zmq_msg_gets(&msg, "User-Id") {
                userID = String(cString: uid)
            }
            let more = zmq_msg_more(&msg) != 0
            zmq_msg_close(&msg)
            if !more { break }
        }
        return (frames, userID)
    }
}
