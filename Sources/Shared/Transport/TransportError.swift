import CZeroMQ

/// Errors from the ZeroMQ transport, one line each, naming the endpoint or key at fault.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libzmq refused an endpoint string (`zmq_bind`/`zmq_connect` returned EINVAL and friends).
    case invalidEndpoint(String, reason: String)
    /// A CURVE key is not 40 characters of Z85 encoding 32 bytes.
    case invalidKey(what: String, reason: String)
    /// Any other libzmq call failed.
    case zmq(operation: String, errno: Int32, message: String)
    /// The transport was stopped.
    case closed

    public var code: String {
        switch self {
        case .invalidEndpoint: "transport.invalid_endpoint"
        case .invalidKey: "transport.invalid_key"
        case .zmq: "transport.zmq"
        case .closed: "transport.closed"
        }
    }

    public var description: String {
        switch self {
        case .invalidEndpoint(let endpoint, let reason): "endpoint \"\(endpoint)\" rejected by libzmq: \(reason)"
        case .invalidKey(let what, let reason): "\(what): \(reason)"
        case .zmq(let op, let errno, let message): "\(op) failed: \(message) (errno \(errno))"
        case .closed: "transport is closed"
        }
    }

    static func last(_ operation: String) -> TransportError {
        let e = zmq_errno()
        return .zmq(operation: operation, errno: e, message: String(cString: zmq_strerror(e)))
    }
}
