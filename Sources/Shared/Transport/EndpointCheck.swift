import CZeroMQ

/// Validates endpoint strings with libzmq itself, so the rules are exactly the ones the transport applies.
public enum EndpointCheck {
    /// A connect endpoint: libzmq parses it on `zmq_connect`. The probe socket is closed at once with
    /// linger 0, so nothing is sent beyond a possible TCP handshake.
    public static func validateConnectEndpoint(_ endpoint: String, configFile: String, key: String) throws(ConfigError) {
        try probe(endpoint, type: ZMQ_DEALER, configFile: configFile, key: key) { s throws(TransportError) in try s.connect(endpoint) }
    }

    /// A bind endpoint: bound and released at once. "Address in use" counts as valid (the server may be running).
    public static func validateBindEndpoint(_ endpoint: String, configFile: String, key: String) throws(ConfigError) {
        try probe(endpoint, type: ZMQ_ROUTER, configFile: configFile, key: key, tolerating: EADDRINUSE) { s throws(TransportError) in try s.bind(endpoint) }
    }

    private static func probe(
        _ endpoint: String, type: Int32, configFile: String, key: String, tolerating tolerated: Int32? = nil,
        _ action: (ZMQSocket) throws(TransportError) -> Void
    ) throws(ConfigError) {
        let context = ZMQContext()
        defer { context.terminate() }
        do {
            let socket = try ZMQSocket(context: context, type: type)
            defer { socket.close() }
            try socket.set(ZMQ_LINGER, Int32(0))
            try action(socket)
        } catch {
            if let tolerated, zmq_errno() == tolerated { return }
            let reason: String
            if case .invalidEndpoint(_, let r) = error { reason = r } else { reason = error.description }
            throw ConfigError(file: configFile, key: key, message: "\"\(endpoint)\" rejected by libzmq: \(reason)")
        }
    }
}
