import FoundationEssentials

/// Maps what went wrong — a runtime's free-text error, an HTTP status, a registry error code, a libcurl
/// result — to the shared ``ErrorClass`` vocabulary.
///
/// Free text is matched against ``MessageRules/table`` in order, first match wins. The order encodes
/// "root cause first": runtimes wrap errors (`failed to resolve reference …: dial tcp: lookup … no such
/// host`), so causes below the HTTP layer (disk, proxy, DNS, TLS, TCP) are tried before the wrappers
/// (`not found`, `timeout`) that often surround them. The table is data, tested line by line against the
/// catalogue of real messages in `Tests/SharedTests/Fixtures/classifier/catalogue.tsv`.
public enum ErrorClassifier {
    /// Classifies a runtime, kubelet or client error message.
    public static func classify(message: String) -> ErrorClass {
        let text = message.lowercased()
        for rule in MessageRules.table where rule.matches(text) {
            return rule.errorClass
        }
        return .unknown
    }

    /// Classifies a registry's JSON error body (`{"errors":[{"code":"…"}]}`), if it is one.
    public static func classify(registryErrorBody body: some Collection<UInt8>) -> ErrorClass? {
        guard let decoded = try? JSONDecoder().decode(RegistryErrorBody.self, from: Data(body)), let first = decoded.errors.first else { return nil }
        return classify(registryErrorCode: first.code)
    }

    struct RegistryErrorBody: Decodable {
        struct Item: Decodable { var code: String }
        var errors: [Item]
    }

    /// Classifies an OCI distribution error code (`UNAUTHORIZED`, `TOOMANYREQUESTS`, …).
    public static func classify(registryErrorCode code: String) -> ErrorClass {
        switch code.uppercased() {
        case "UNAUTHORIZED": .authFailed
        case "DENIED": .accessDenied
        case "TOOMANYREQUESTS": .rateLimited
        case "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN": .notFound
        case "UNAVAILABLE": .serverError
        case "UNSUPPORTED": .notRegistry
        default: .unknown
        }
    }

    /// What a request was for: a `401` on the `/v2/` ping is the normal challenge, elsewhere it is a failure.
    public enum RequestKind: Sendable {
        case ping, token, manifest
    }

    /// Classifies an HTTP status of a registry request (nil: the status is a success for that request).
    public static func classify(httpStatus status: Int, kind: RequestKind) -> ErrorClass? {
        switch (status, kind) {
        case (200..<300, _): nil
        case (401, .ping): nil
        case (401, _): .authFailed
        case (403, _): .accessDenied
        case (404, .ping): .notRegistry
        case (404, _): .notFound
        case (407, _): .proxyFailure
        case (429, _): .rateLimited
        case (500..<600, _): .serverError
        default: kind == .ping ? .notRegistry : .unknown
        }
    }
}
