/// Why a text is not a YAML document regwatch reads, and the 1-based line where that shows.
public struct YAMLError: Error, Sendable, Equatable {
    public var line: Int
    public var problem: String

    public init(line: Int, _ problem: String) {
        self.line = line
        self.problem = problem
    }
}
