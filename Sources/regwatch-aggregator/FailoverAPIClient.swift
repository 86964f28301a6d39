import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RegwatchAggregator
import RegwatchShared

/// `failover freeze|thaw`: the running aggregator holds the controller, so the CLI asks it through the
/// HTTP API with the bearer token from the file `apiToken` names.
struct FailoverAPIClient {
    let config: AggregatorConfig
    let configFile: String

    func post(_ action: String, reason: String?) async throws -> String {
        guard let tokenPath = config.apiToken else {
            throw ConfigError(file: configFile, key: "apiToken", message: "not set: freeze and thaw need the API bearer token")
        }
        guard let raw = FileManager.default.contents(atPath: tokenPath) else {
            throw ConfigError(file: configFile, key: "apiToken", message: "cannot read \(tokenPath)")
        }
        let token = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var host = config.httpAddress
        if host.hasPrefix("0.0.0.0:") { host = "127.0.0.1:" + host.dropFirst(8) }
        var components = URLComponents(string: "http://\(host)/api/v1/failovers/\(action)")!
        if let reason { components.queryItems = [URLQueryItem(name: "reason", value: reason)] }
        var request = URLRequest(url: components.url!)
        request.httpMethod = "POST"
        request.timeoutInterval = 10
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let data: Data, response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw ConfigError(file: configFile, key: "listen.http", message: "cannot reach the aggregator at \(host): \(error.localizedDescription)")
        }
        let body = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
            throw ConfigError(file: configFile, key: "apiToken", message: "\(action) refused by the aggregator: \(body)")
        }
        return "\(action): \(body)"
    }
}
