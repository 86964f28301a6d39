/// A `WWW-Authenticate` challenge from a registry's `/v2/`: `Bearer realm="…",service="…"` or `Basic realm="…"`.
struct AuthChallenge: Equatable {
    enum Scheme: Equatable { case bearer, basic }
    var scheme: Scheme
    var parameters: [String: String]

    init?(_ header: String?) {
        guard let header else { return nil }
        let trimmed = header.trimmingASCIISpaces()
        guard let space = trimmed.firstIndex(of: " ") else { return nil }
        switch trimmed[..<space].lowercased() {
        case "bearer": scheme = .bearer
        case "basic": scheme = .basic
        default: return nil
        }
        var params: [String: String] = [:]
        var rest = Substring(trimmed[trimmed.index(after: space)...])
        while let eq = rest.firstIndex(of: "=") {
            let key = rest[..<eq].trimmingASCIISpaces().lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                let end = rest.firstIndex(of: "\"") ?? rest.endIndex
                value = String(rest[..<end])
                rest = end < rest.endIndex ? rest[rest.index(after: end)...] : ""
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = String(rest[..<end]).trimmingASCIISpaces()
                rest = rest[end...]
            }
            params[key] = value
            if let comma = rest.firstIndex(of: ",") { rest = rest[rest.index(after: comma)...] } else { break }
        }
        parameters = params
    }
}

extension StringProtocol {
    func trimmingASCIISpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }.reversed())
    }
}
