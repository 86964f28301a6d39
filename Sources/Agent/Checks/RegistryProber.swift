import Foundation
import RegwatchShared

/// Probes one registry endpoint the way a runtime would reach it, in the order of the operator's
/// flowchart: DNS, TCP, TLS, a real registry's `/v2/`, auth, then the probe image's manifest (a
/// pull-through cache answers `/v2/` even when its upstream is down). The first failing step sets the class.
public struct RegistryProber: Sendable {
    let runner: CurlMultiRunner
    let resolver: DNSResolver
    let now: @Sendable () -> Date

    public init(runner: CurlMultiRunner, resolver: DNSResolver = DNSResolver(), now: @escaping @Sendable () -> Date = Date.init) {
        self.runner = runner
        self.resolver = resolver
        self.now = now
    }

    static let manifestAccept = "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
        + "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

    public func probe(_ target: ProbeTarget) async -> ProbeResult {
        let started = ContinuousClock.now
        let checkedAt = now()
        var result = ProbeResult(endpoint: target.endpoint, errorClass: .ok, checkedAt: checkedAt)
        func finish(_ cls: ErrorClass, _ detail: String) -> ProbeResult {
            result.errorClass = cls
            result.detail = detail
            let elapsed = ContinuousClock.now - started
            result.phases.totalMs = (Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15).rounded(toPlaces: 1)
            return result
        }
        guard let url = URL(string: target.endpoint.url), let host = url.host, let scheme = url.scheme else {
            return finish(.configInvalid, "\(target.endpoint.url) is not a URL")
        }
        let https = scheme == "https"
        let port = url.port ?? (https ? 443 : 80)
        let base = target.endpoint.url.hasSuffix("/") ? String(target.endpoint.url.dropLast()) : target.endpoint.url

        // DNS
        let (answer, dnsMs) = await resolver.resolve(host)
        result.phases.dnsMs = dnsMs.rounded(toPlaces: 1)
        let address: String
        switch answer {
        case .addresses(let list): address = list[0]
        case .nxdomain(let m): return finish(.dnsNXDomain, m)
        case .failure(let m): return finish(.dnsFailure, m)
        case .timeout: return finish(.dnsFailure, "lookup \(host): no answer within \(resolver.timeout)")
        }
        let pin = DNSResolver.isIPLiteral(host) ? [] : ["\(host):\(port):\(address.contains(":") ? "[\(address)]" : address)"]
        func request(_ path: String, method: CurlRequest.Method = .get, headers: [String] = []) -> CurlRequest {
            var r = CurlRequest(url: base + path, method: method)
            r.resolve = pin
            r.headers = headers
            r.connectTimeoutMs = target.connectTimeoutMs
            r.timeoutMs = target.timeoutMs
            r.caFile = target.caFile
            return r
        }

        // TCP + TLS + /v2/, verifying the certificate as the runtime would.
        var ping = await runner.perform(request("/v2/"))
        if https && ping.curlCode == ProbeClassification.peerFailedVerification {
            // Not trusted here: look again without verification to describe the certificate (expiry, names).
            let cls = ProbeClassification.certificateFailure(ping.curlMessage)
            var look = request("/v2/")
            look.verify = false
            let seen = await runner.perform(look)
            let expiry = ProbeClassification.expiry(seen.leafCertificate, now: checkedAt)
            result.tls = TLSState(trusted: false, daysLeft: expiry?.days, expiresAt: expiry?.date)
            if !target.insecure || !seen.succeeded {
                result.phases.connectMs = (dnsMs + seen.connectMs).rounded(toPlaces: 1)
                if seen.tlsMs > 0 { result.phases.tlsMs = (dnsMs + seen.tlsMs).rounded(toPlaces: 1) }
                return finish(cls, "certificate of \(host): \(ping.curlMessage)\(expiry.map { " (expires in \($0.days) days)" } ?? "")")
            }
            ping = seen // the runtime is told to accept this endpoint's certificate
        } else if https && ping.succeeded {
            let expiry = ProbeClassification.expiry(ping.leafCertificate, now: checkedAt)
            result.tls = TLSState(trusted: true, daysLeft: expiry?.days, expiresAt: expiry?.date)
        }
        result.phases.connectMs = (dnsMs + ping.connectMs).rounded(toPlaces: 1)
        if https && ping.tlsMs > 0 { result.phases.tlsMs = (dnsMs + ping.tlsMs).rounded(toPlaces: 1) }
        if ping.ttfbMs > 0 { result.phases.ttfbMs = (dnsMs + ping.ttfbMs).rounded(toPlaces: 1) }
        if !ping.succeeded {
            let cls = ProbeClassification.transportFailure(ping, https: https, targetPort: port)
            let via = cls == .proxyFailure ? " through the proxy on port \(ProbeClassification.attemptedPort(ping) ?? 0)" : ""
            return finish(cls, "\(ping.curlMessage) (\(address):\(port)\(via))")
        }
        let apiVersion = ping.headers["docker-distribution-api-version"]
        let challenge = AuthChallenge(ping.headers["www-authenticate"])
        if ping.status == 429 { return finish(.rateLimited, "GET /v2/ answered 429") }
        if (500..<600).contains(ping.status) { return finish(.serverError, "GET /v2/ answered \(ping.status)") }
        guard ping.status == 200 || (ping.status == 401 && (challenge != nil || apiVersion != nil)) else {
            let kind = ping.headers["content-type"] ?? "no content type"
            return finish(.notRegistry, "GET /v2/ answered \(ping.status) (\(kind)) without Docker-Distribution-Api-Version: not a registry")
        }
        if ping.status == 200 && apiVersion == nil && ErrorClassifier.classify(registryErrorBody: ping.body) == nil && !Self.looksLikeJSON(ping.body) {
            return finish(.notRegistry, "GET /v2/ answered 200 with \(ping.headers["content-type"] ?? "a non-JSON body"): not a registry")
        }

        guard let repo = target.probeRepository, let tag = target.probeTag else {
            return finish(.ok, "registry answers /v2/ (\(ping.status))")
        }

        // Auth
        var authorization: [String] = []
        if ping.status == 401, let challenge {
            switch challenge.scheme {
            case .basic:
                guard let creds = target.credentials else { return finish(.authFailed, "registry requires basic auth and no credentials are configured") }
                authorization = ["Authorization: Basic \(Data(creds.utf8).base64EncodedString())"]
            case .bearer:
                guard let realm = challenge.parameters["realm"], var components = URLComponents(string: realm) else {
                    return finish(.authFailed, "Bearer challenge without a realm")
                }
                var items = components.queryItems ?? []
                if let service = challenge.parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
                items.append(URLQueryItem(name: "scope", value: "repository:\(repo):pull"))
                components.queryItems = items
                var tokenRequest = CurlRequest(url: components.string ?? realm)
                tokenRequest.basicAuth = target.credentials
                tokenRequest.connectTimeoutMs = target.connectTimeoutMs
                tokenRequest.timeoutMs = target.timeoutMs
                let tokenResponse = await runner.perform(tokenRequest)
                guard tokenResponse.succeeded else {
                    return finish(ProbeClassification.transportFailure(tokenResponse, https: realm.hasPrefix("https")), "token endpoint \(realm): \(tokenResponse.curlMessage)")
                }
                if let cls = ErrorClassifier.classify(httpStatus: tokenResponse.status, kind: .token) {
                    return finish(cls, "token endpoint \(realm) answered \(tokenResponse.status)\(target.credentials == nil ? " (no credentials configured)" : "")")
                }
                guard let token = Self.token(from: tokenResponse.body) else { return finish(.authFailed, "token endpoint \(realm) sent no token") }
                authorization = ["Authorization: Bearer \(token)"]
            }
        }

        // Manifest (HEAD: costs no Docker Hub quota) and rate-limit headroom.
        let ns = target.endpoint.role == .mirror ? "?ns=\(target.endpoint.registry)" : ""
        var manifestRequest = request("/v2/\(repo)/manifests/\(tag)\(ns)", method: .head, headers: [Self.manifestAccept] + authorization)
        manifestRequest.verify = result.tls?.trusted != false
        let manifest = await runner.perform(manifestRequest)
        if !manifest.succeeded {
            return finish(ProbeClassification.transportFailure(manifest, https: https, targetPort: port), "HEAD manifest \(repo):\(tag): \(manifest.curlMessage)")
        }
        result.manifest = ManifestState(reference: "\(repo):\(tag)", status: manifest.status, digest: manifest.headers["docker-content-digest"])
        if target.readsRateLimit, let (limit, window) = ProbeClassification.rateLimitValue(manifest.headers["ratelimit-limit"]),
           let (remaining, _) = ProbeClassification.rateLimitValue(manifest.headers["ratelimit-remaining"]) {
            result.rateLimit = RateLimitState(limit: limit, remaining: remaining, windowSeconds: window ?? 21_600, source: manifest.headers["docker-ratelimit-source"])
        }
        if let cls = ErrorClassifier.classify(httpStatus: manifest.status, kind: .manifest) {
            return finish(cls, "HEAD /v2/\(repo)/manifests/\(tag) answered \(manifest.status)")
        }
        return finish(.ok, "manifest \(repo):\(tag) present\(manifest.headers["docker-content-digest"].map { " (\($0.prefix(19))…)" } ?? "")")
    }

    static func token(from body: [UInt8]) -> String? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        return (object["token"] as? String) ?? (object["access_token"] as? String)
    }

    static func looksLikeJSON(_ body: [UInt8]) -> Bool {
        guard let first = body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else { return true }
        return first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let m = pow(10, Double(places))
        return (self * m).rounded() / m
    }
}
