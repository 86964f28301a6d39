import FoundationEssentials
import Glibc
import RegwatchShared

/// Probes one registry endpoint the way a runtime would reach it, in the order of the operator's
/// flowchart: DNS, TCP, TLS, a real registry's `/v2/`, auth, then the probe image's manifest (a
/// pull-through cache answers `/v2/` even when its upstream is down). The first failing step sets the class.
///
/// The I/O goes through two seams, ``HTTPTransport`` (libcurl) and ``NameResolver`` (getaddrinfo); each
/// step's verdict is a pure function in ``ProbeSteps``.
public struct RegistryProber: Sendable {
    let runner: any HTTPTransport
    let resolver: any NameResolver
    let now: @Sendable () -> Date

    public init(runner: any HTTPTransport, resolver: any NameResolver = DNSResolver(), now: @escaping @Sendable () -> Date = Date.init) {
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

        // DNS, unless a proxy does it: then the proxy resolves the name, as it does for the runtime.
        let proxy = target.proxy?.proxy(forHost: host, scheme: scheme)
        var pin: [String] = []
        var address = host
        if proxy == nil {
            let (answer, dnsMs) = await resolver.resolve(host)
            result.phases.dnsMs = dnsMs.rounded(toPlaces: 1)
            switch ProbeSteps.resolution(answer, host: host, timeout: resolver.timeout) {
            case .success(let a): address = a
            case .failure(let stop): return finish(stop.errorClass, stop.detail)
            }
            pin = DNSResolver.isIPLiteral(host) ? [] : ["\(host):\(port):\(address.contains(":") ? "[\(address)]" : address)"]
        }
        let dnsMs = result.phases.dnsMs ?? 0
        func request(_ path: String, method: CurlRequest.Method = .get, headers: [String] = []) -> CurlRequest {
            var r = CurlRequest(url: base + path, method: method)
            r.resolve = pin
            r.headers = headers
            r.connectTimeoutMs = target.connectTimeoutMs
            r.timeoutMs = target.timeoutMs
            r.caFile = target.caFile
            // A runtime's proxy replaces the agent's environment: "" means direct, whatever HTTPS_PROXY says.
            if target.proxy != nil { r.proxy = proxy ?? "" }
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
        // Quota headers count from whichever response carries them first (a 429 may come before the manifest).
        func noteRateLimit(_ r: CurlResponse) {
            if target.readsRateLimit, result.rateLimit == nil, let q = ProbeSteps.rateLimit(r.headers) { result.rateLimit = q }
        }
        noteRateLimit(ping)
        if case .stop(let cls, let detail) = ProbeSteps.registryAnswer(ping, https: https, port: port, address: address) {
            return finish(cls, detail)
        }
        let challenge = AuthChallenge(ping.headers["www-authenticate"])

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
                if let runtimeProxy = target.proxy, let tokenURL = URL(string: tokenRequest.url), let tokenHost = tokenURL.host {
                    tokenRequest.proxy = runtimeProxy.proxy(forHost: tokenHost, scheme: tokenURL.scheme ?? "https") ?? ""
                }
                let tokenResponse = await runner.perform(tokenRequest)
                noteRateLimit(tokenResponse)
                switch ProbeSteps.tokenAnswer(tokenResponse, realm: realm, hasCredentials: target.credentials != nil) {
                case .success(let token): authorization = ["Authorization: Bearer \(token)"]
                case .failure(let stop): return finish(stop.errorClass, stop.detail)
                }
            }
        }

        // Manifest (HEAD: costs no Docker Hub quota) and rate-limit headroom.
        let ns = target.endpoint.role == .mirror ? "?ns=\(target.endpoint.registry)" : ""
        var manifestRequest = request("/v2/\(repo)/manifests/\(tag)\(ns)", method: .head, headers: [Self.manifestAccept] + authorization)
        manifestRequest.verify = result.tls?.trusted != false
        let manifest = await runner.perform(manifestRequest)
        if manifest.succeeded {
            result.manifest = ManifestState(reference: "\(repo):\(tag)", status: manifest.status, digest: manifest.headers["docker-content-digest"])
            // The manifest's own headers are the freshest count.
            if target.readsRateLimit, let q = ProbeSteps.rateLimit(manifest.headers) { result.rateLimit = q }
        }
        let verdict = ProbeSteps.manifestAnswer(manifest, reference: "\(repo):\(tag)", https: https, port: port)
        return finish(verdict.errorClass, verdict.detail)
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let m = pow(10, Double(places))
        return (self * m).rounded() / m
    }
}
