import CZeroMQ

/// Validates endpoint strings with libzmq itself, so the rules are exactly the ones the transport applies.
public enum EndpointCheck {
    /// A connect endpoint: libzmq parses it on `zmq_connect`. The probe socket is closed at once with
    /// linger 0, so nothing is sent beyond a possible TCP handshake.
    public static func validateConnectEndpoint(_ endpoint: String, configFile: String, key: String) throws(ConfigError) {
        let context = ZMQContext()
        defer { context.terminate() }
        do {
            let socket = try ZMQSocket(context: context, type: ZMQ_DEALER)
            defer { socket.close() }
            try socket.set(ZMQ_LINGER, Int32(0))
            try socket.connect(endpoint)
        } catch {
            throw ConfigError(file: configFile, key: key, message: "\"\(endpoint)\" rejected by libzmq: \(reason(error))")
        }
    }

    /// A bind endpoint: bound and released at once. "Address in use" counts as valid (the server may be running).
    public static func validateBindEndpoint(_ endpoint: String, configFile: String, key: String) throws(ConfigError) {
        let context = ZMQContext()
        defer { context.terminate() }
        do {
            let socket = try ZMQSocket(context: context, type: ZMQ_ROUTER)
            defer { socket.close() }
            try socket.set(ZMQ_LINGER, Int32(0))
            try socket.bind(endpoint)
        } catch {
            if zmq_errno() == EADDRINUSE { return }
            throw ConfigError(file: configFile, key: key, message: "\"\(endpoint)\" rejected by libzmq: \(reason(error))")
        }
    }

    private static func reason(_ error: TransportError) -> String {
        if case .invalidEndpoint(_, let reason) = error { return reason }
        return error.description
    }
}
