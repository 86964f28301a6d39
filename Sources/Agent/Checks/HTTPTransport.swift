/// Performs the probe engine's HTTP transfers. The real one is libcurl's multi interface
/// (``CurlMultiRunner``); tests give the engine scripted responses to check every verdict without a socket.
public protocol HTTPTransport: Sendable {
    func perform(_ request: CurlRequest) async -> CurlResponse
}

extension CurlMultiRunner: HTTPTransport {}
