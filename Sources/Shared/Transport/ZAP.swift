/// A ZAP (ZeroMQ Authentication Protocol, RFC 27) request as the router's handler receives it.
public struct ZAPRequest: Sendable, Equatable {
    public var domain: String
    /// The client's IP address.
    public var address: String
    /// `CURVE`, `NULL` or `PLAIN`.
    public var mechanism: String
    /// The client's long-term CURVE public key (CURVE only).
    public var clientKey: CurvePublicKey?

    public init(domain: String, address: String, mechanism: String, clientKey: CurvePublicKey?) {
        self.domain = domain
        self.address = address
        self.mechanism = mechanism
        self.clientKey = clientKey
    }
}

/// The verdict on a ZAP request. `allow` binds the connection to a host id: libzmq attaches it to every
/// message from that connection as the `User-Id` property, which is what authenticates the sender.
public enum ZAPDecision: Sendable, Equatable {
    case allow(hostID: String)
    case deny(reason: String)
}

/// Decides which clients may connect. The aggregator's implementation admits only enrolled keys.
public protocol ZAPAuthenticator: Sendable {
    func authenticate(_ request: ZAPRequest) -> ZAPDecision
}

enum ZAPProtocol {
    static let endpoint = "inproc://zeromq.zap.01"
    static let version: [UInt8] = Array("1.0".utf8)

    /// Builds the 6-frame reply for a request's frames.
    static func reply(to frames: [[UInt8]], authenticator: any ZAPAuthenticator) -> (reply: [[UInt8]], request: ZAPRequest?, decision: ZAPDecision) {
        guard frames.count >= 6, frames[0] == version else {
            let id = frames.count > 1 ? frames[1] : []
            let d = ZAPDecision.deny(reason: "malformed ZAP request")
            return ([version, id, Array("500".utf8), Array("malformed ZAP request".utf8), [], []], nil, d)
        }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        var key: CurvePublicKey?
        if mechanism == "CURVE", frames.count >= 7 { key = CurvePublicKey(raw: frames[6]) }
        let request = ZAPRequest(
            domain: String(decoding: frames[2], as: UTF8.self),
            address: String(decoding: frames[3], as: UTF8.self),
            mechanism: mechanism,
            clientKey: key
        )
        let decision: ZAPDecision = (mechanism == "CURVE" && key != nil)
            ? authenticator.authenticate(request)
            : .deny(reason: "mechanism \(mechanism) not allowed")
        switch decision {
        case .allow(let host):
            return ([version, frames[1], Array("200".utf8), Array("OK".utf8), Array(host.utf8), []], request, decision)
        case .deny(let reason):
            return ([version, frames[1], Array("400".utf8), Array(reason.utf8), [], []], request, decision)
        }
    }
}
