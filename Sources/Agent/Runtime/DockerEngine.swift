import FoundationEssentials

/// The Docker Engine API over its unix socket: what the daemon actually uses, as opposed to what
/// `daemon.json` says (a reload that failed keeps the old mirrors).
public struct DockerEngine: Sendable {
    public let socket: String
    let runner: any HTTPTransport

    public init(socket: String, runner: any HTTPTransport) {
        self.socket = socket
        self.runner = runner
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreachable(String)
        case badAnswer(String)

        public var description: String {
            switch self {
            case .unreachable(let m): "docker socket: \(m)"
            case .badAnswer(let m): "docker /info: \(m)"
            }
        }
    }

    /// `GET /info` -> `RegistryConfig.Mirrors`, trailing slashes removed.
    public func effectiveMirrors() async throws(Failure) -> [String] {
        var request = CurlRequest(url: "http://localhost/v1.41/info")
        request.unixSocket = socket
        request.connectTimeoutMs = 2000
        request.timeoutMs = 5000
        request.maxBody = 1 << 20
        let response = await runner.perform(request)
        guard response.succeeded else { throw .unreachable(response.curlMessage) }
        guard response.status == 200 else { throw .badAnswer("status \(response.status)") }
        guard let registry = JSONValue.parse(response.body)?["RegistryConfig"]?.object else { throw .badAnswer("no RegistryConfig") }
        let mirrors = registry["Mirrors"]?.strings ?? []
        return mirrors.map(DockerDaemonConfig.normalized)
    }
}
