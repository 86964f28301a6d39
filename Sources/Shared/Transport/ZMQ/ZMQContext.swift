import CZeroMQ

/// A libzmq context: its I/O threads and the inproc namespace (the ZAP handler lives there).
///
/// libzmq contexts are thread-safe. Each ``RouterServer`` and ``DealerClient`` owns one, so a ZAP handler
/// bound in one never answers for another.
public final class ZMQContext: @unchecked Sendable {
    package let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int32 = 1) {
        handle = zmq_ctx_new()
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        zmq_ctx_set(handle, ZMQ_BLOCKY, 0)
    }

    /// Terminates the context. Every socket must be closed first, or this blocks.
    package func terminate() {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// Whether this libzmq was built with CURVE (libsodium).
    public static var hasCurve: Bool { zmq_has("curve") == 1 }

    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
