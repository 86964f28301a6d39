import RegwatchShared

/// One sample observation behind an outage: which host saw what. Operators read these to trust (or
/// doubt) a verdict without opening the database, so each names the host, where it sits and its words.
public struct OutageEvidence: Codable, Sendable, Hashable {
    public var host: String
    public var zone: String?
    /// The endpoint URL this observation is about (for `host_local`, one of the host's failing endpoints).
    public var endpoint: String?
    public var errorClass: ErrorClass
    /// The agent's one-line detail, or for quota and certificate evidence the number that counted.
    public var detail: String

    public init(host: String, zone: String? = nil, endpoint: String? = nil, errorClass: ErrorClass, detail: String) {
        self.host = host
        self.zone = zone
        self.endpoint = endpoint
        self.errorClass = errorClass
        self.detail = detail
    }
}
