/// Why a wire frame was rejected. Each case has a stable code for logs and metrics labels.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case notJSON(String)
    case missingHeader(String)
    case unsupportedVersion(Int)
    case unknownType(String)
    case invalidBody(type: String, detail: String)

    public var code: String {
        switch self {
        case .empty: "wire.empty"
        case .notJSON: "wire.not_json"
        case .missingHeader: "wire.bad_header"
        case .unsupportedVersion: "wire.unsupported_version"
        case .unknownType: "wire.unknown_type"
        case .invalidBody: "wire.invalid_body"
        }
    }

    public var description: String {
        switch self {
        case .empty: "empty frame"
        case .notJSON(let detail): "frame is not JSON (truncated or garbled): \(detail)"
        case .missingHeader(let detail): "envelope header invalid: \(detail)"
        case .unsupportedVersion(let v): "protocol version \(v) not supported (this build speaks \(WireProtocol.minimumVersion)...\(WireProtocol.version))"
        case .unknownType(let t): "message type \"\(t.prefix(64))\" is not in the allowlist"
        case .invalidBody(let type, let detail): "\(type) body invalid: \(detail)"
        }
    }
}
