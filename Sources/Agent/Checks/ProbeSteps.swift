import FoundationEssentials
import RegwatchShared

/// The verdicts of the probe flowchart, one function per step, each a pure function of what that step's
/// lookup or transfer returned: ``RegistryProber`` does the I/O and asks these in order.
enum ProbeSteps {
    /// A step stops the probe with a class and the evidence, or lets it go on.
    enum Verdict: Equatable {
        case proceed
        case stop(ErrorClass, String)
    }

    /// DNS: the address to connect to, or why there is none.
    static func resolution(_ outcome: DNSResolver.Outcome, host: String, timeout: Duration) -> Result<String, Stop> {
        switch outcome {
        case .addresses(let list): list.first.map { .success($0) } ?? .failure(Stop(.dnsFailure, "lookup \(host): no addresses"))
        case .nxdomain(let m): .failure(Stop(.dnsNXDomain, m))
        case .failure(let m): .failure(Stop(.dnsFailure, m))
        case .timeout: .failure(Stop(.dnsFailure, "lookup \(host): no answer within \(timeout)"))
        }
    }

    struct Stop: Error, Equatable {
        let errorClass: ErrorClass
        let detail: String
        init(_ errorClass: ErrorClass, _ detail: String) {
            self.errorClass = errorClass
            self.detail = detail
        }
    }

    /// TCP, TLS and `GET /v2/`: did a registry answer?
    static func registryAnswer(_ ping: CurlResponse, https: Bool, port: Int, address: String) -> Verdict {
        if !ping.succeeded {
            let cls = ProbeClassification.transportFailure(ping, https: https, targetPort: port)
            let via = cls == .proxyFailure ? " through the proxy on port \(ProbeClassification.attemptedPort(ping) ?? 0)" : ""
            return .stop(cls, "\(ping.curlMessage) (\(address):\(port)\(via))")
        }
        let apiVersion = ping.headers["docker-distribution-api-version"]
        let challenge = AuthChallenge(ping.headers["www-authenticate"])
        if ping.status == 429 { return .stop(.rateLimited, "GET /v2/ answered 429\(headroom(ping.headers))") }
        if (500..<600).contains(ping.status) { return .stop(.serverError, "GET /v2/ answered \(ping.status)") }
        guard ping.status == 200 || (ping.status == 401 && (challenge != nil || apiVersion != nil)) else {
            let kind = ping.headers["content-type"] ?? "no content type"
            return .stop(.notRegistry, "GET /v2/ answered \(ping.status) (\(kind)) without Docker-Distribution-Api-Version: not a registry")
        }
        if ping.status == 200 && apiVersion == nil && ErrorClassifier.classify(registryErrorBody: ping.body) == nil && !looksLikeJSON(ping.body) {
            return .stop(.notRegistry, "GET /v2/ answered 200 with \(ping.headers["content-type"] ?? "a non-JSON body"): not a registry")
        }
        return .proceed
    }

    /// The token endpoint of a Bearer challenge: a token, or why not.
    static func tokenAnswer(_ response: CurlResponse, realm: String, hasCredentials: Bool) -> Result<String, Stop> {
        guard response.succeeded else {
            return .failure(Stop(ProbeClassification.transportFailure(response, https: realm.hasPrefix("https")), "token endpoint \(realm): \(response.curlMessage)"))
        }
        if let cls = ErrorClassifier.classify(httpStatus: response.status, kind: .token) {
            return .failure(Stop(cls, "token endpoint \(realm) answered \(response.status)\(hasCredentials ? "" : " (no credentials configured)")\(headroom(response.headers))"))
        }
        guard let token = token(from: response.body) else { return .failure(Stop(.authFailed, "token endpoint \(realm) sent no token")) }
        return .success(token)
    }

    /// `HEAD` of the probe image's manifest: the last step, so always the probe's verdict (`ok` included).
    static func manifestAnswer(_ manifest: CurlResponse, reference: String, https: Bool, port: Int) -> Stop {
        if !manifest.succeeded {
            return Stop(ProbeClassification.transportFailure(manifest, https: https, targetPort: port), "HEAD manifest \(reference): \(manifest.curlMessage)")
        }
        if let cls = ErrorClassifier.classify(httpStatus: manifest.status, kind: .manifest) {
            let (repo, tag) = split(reference)
            return Stop(cls, "HEAD /v2/\(repo)/manifests/\(tag) answered \(manifest.status)\(headroom(manifest.headers))")
        }
        return Stop(.ok, "manifest \(reference) present\(manifest.headers["docker-content-digest"].map { " (\($0.prefix(19))…)" } ?? "")")
    }

    /// Docker Hub's quota headers (`ratelimit-limit: 100;w=21600`, `ratelimit-remaining`,
    /// `docker-ratelimit-source`), from whichever response carries them: a manifest HEAD, or a 429 at
    /// `/v2/` or at the token endpoint from a registry or proxy that refuses before the manifest.
    static func rateLimit(_ headers: [String: String]) -> RateLimitState? {
        guard let (limit, window) = ProbeClassification.rateLimitValue(headers["ratelimit-limit"]),
              let (remaining, _) = ProbeClassification.rateLimitValue(headers["ratelimit-remaining"]) else { return nil }
        return RateLimitState(limit: limit, remaining: remaining, windowSeconds: window ?? 21_600, source: headers["docker-ratelimit-source"])
    }

    /// ` (0 of 100 pulls left, source 203.0.113.7)` when the response carries quota headers.
    static func headroom(_ headers: [String: String]) -> String {
        guard let r = rateLimit(headers) else { return "" }
        return " (\(r.remaining) of \(r.limit) pulls left\(r.source.map { ", source \($0)" } ?? ""))"
    }

    static func token(from body: [UInt8]) -> String? {
        guard let object = JSONValue.parse(body) else { return nil }
        return object["token"]?.string ?? object["access_token"]?.string
    }

    static func looksLikeJSON(_ body: [UInt8]) -> Bool {
        guard let first = body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else { return true }
        return first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
    }

    private static func split(_ reference: String) -> (Substring, Substring) {
        guard let colon = reference.lastIndex(of: ":") else { return (reference[...], "") }
        return (reference[..<colon], reference[reference.index(after: colon)...])
    }
}
