import FoundationEssentials

/// A Docker credential helper (`docker-credential-NAME get`), run as Docker and containerd's CRI run it:
/// the server URL on stdin, `{"ServerURL","Username","Secret"}` on stdout. Behind a protocol because it
/// starts a process on the host.
public protocol CredentialHelperRunning: Sendable {
    func get(helper: String, serverURL: String, timeout: Duration) async -> CredentialHelper.Outcome
}

public enum CredentialHelper {
    public enum Outcome: Sendable, Equatable {
        case found(username: String, secret: String)
        /// The helper answered that it has nothing for this server.
        case none
        case missing(String)
        case timedOut
        case failed(String)
    }

    /// Helper names as Docker accepts them: the suffix of an executable's name.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) }
    }

    /// Reads the helper's answer; nil when it is not one.
    static func parseAnswer(_ bytes: [UInt8]) -> (username: String, secret: String)? {
        guard let object = JSONValue.parse(bytes)?.object, let secret = object["Secret"]?.string else { return nil }
        return (object["Username"]?.string ?? "", secret)
    }
}
