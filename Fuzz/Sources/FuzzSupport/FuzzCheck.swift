/// A property a fuzz target checks on every input. A violation aborts the process, so libFuzzer
/// records it like a crash and keeps the input that caused it (`crash-*` in the artifact directory).
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    guard !condition else { return }
    fatalError("property violated: \(message())", file: file, line: line)
}

/// The input as the bytes a target reads (libFuzzer may pass a null pointer with the empty input).
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}
