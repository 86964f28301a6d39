/// Whether one pull-event source works on this host, carried in every report so an operator sees a
/// host whose pull failures are invisible (no socket, no journal) instead of assuming it has none.
public struct EventSourceStatus: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable, Hashable {
        /// Connected or reading.
        case active
        /// Not present on this host (no socket, no systemd journal, no such file); rechecked rarely.
        case absent
        /// Present but failing (connection refused, unexpected answer); retried with backoff.
        case failing
        case unknown

        public init(from decoder: any Decoder) throws {
            self = State(rawValue: try decoder.singleValueContainer().decode(String.self)) ?? .unknown
        }
    }

    /// e.g. `docker-events`, `journal`, `file:/var/log/kubelet.log`.
    public var name: String
    public var state: State
    public var detail: String

    public init(name: String, state: State, detail: String = "") {
        self.name = name
        self.state = state
        self.detail = detail
    }
}
