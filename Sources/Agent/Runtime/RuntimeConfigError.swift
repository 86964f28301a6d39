/// A runtime configuration file regwatch cannot use as it is, with the position when the parser gives one.
/// Reported as the runtime's `valid: false` with this as `detail` (a broken `daemon.json` stops dockerd
/// from starting).
public struct RuntimeConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(path: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        switch (line, column) {
        case (let l?, let c?): "\(path):\(l):\(c): \(message)"
        case (let l?, nil): "\(path):\(l): \(message)"
        default: "\(path): \(message)"
        }
    }
}

enum TextPosition {
    /// 1-based line and column of a UTF-8 byte offset.
    static func lineColumn(of offset: Int, in bytes: [UInt8]) -> (Int, Int) {
        var line = 1, column = 1
        for b in bytes.prefix(max(0, min(offset, bytes.count))) {
            if b == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }
}
