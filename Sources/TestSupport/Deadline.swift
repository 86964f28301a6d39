/// A wait that ran out: the test fails with what it was waiting for, instead of hanging.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let seconds: Double
    public let what: String
    public var description: String { "waited \(seconds) s for \(what)" }
}

/// Runs `body` and returns its result, or cancels it and throws ``DeadlineExceeded`` when it has not
/// finished within `seconds`. For `for await` loops over streams that may never yield.
public func withDeadline<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded(seconds: seconds, what: what) }
        return value
    }
}
