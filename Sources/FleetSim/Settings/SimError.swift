/// Why a simulator run cannot start or go on. Each description is one line naming the option, file or
/// value at fault.
public enum SimError: Error, Sendable, Equatable, CustomStringConvertible {
    case badArgument(String, String)
    case file(String, String)
    case transport(String)
    case aborted(String)

    public var description: String {
        switch self {
        case .badArgument(let option, let why): "\(option): \(why)"
        case .file(let path, let why): "\(path): \(why)"
        case .transport(let why): "transport: \(why)"
        case .aborted(let why): why
        }
    }
}
