import FoundationEssentials
import FuzzSupport
@testable import RegwatchAgent

runFuzzer(fuzz)

/// Docker's `daemon.json` as the agent reads it (`DockerDaemonConfig.parse`) and edits it for failover
/// (`DaemonJSONEditor.setMirrors`). Checked: the strict syntax check and the value parser agree; a file
/// the editor accepts is rewritten without tripping its own read-back check (an "internal error" is a
/// bug, a refusal of a broken file is not), and the result reads back with exactly the new mirrors.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    // A number beyond Double's range is valid syntax that Go's encoding/json refuses to read too.
    if StrictJSON.check(bytes) == nil, numbersInRange(bytes) {
        fuzzCheck(JSONValue.parse(bytes) != nil, "strictly valid JSON that JSONValue cannot read")
    }
    _ = try? DockerDaemonConfig.parse(bytes, path: "daemon.json")

    let mirrors = ["https://mirror-a.example:5000", "http://10.0.0.5:5000", "https://m\u{e9}\"q\\"]
    let edited: [UInt8]
    do {
        edited = try DaemonJSONEditor.setMirrors(mirrors, in: bytes)
    } catch {
        fuzzCheck(!error.message.hasPrefix("internal error"), "\(error.message)")
        return 0
    }
    fuzzCheck(StrictJSON.check(edited) == nil, "the edit is not strictly valid JSON")
    fuzzCheck(JSONValue.parse(edited)?.object?["registry-mirrors"]?.strings == mirrors, "the edit does not carry the mirrors")
    return 0
}

/// Every number token outside strings is a finite Double.
func numbersInRange(_ bytes: [UInt8]) -> Bool {
    var inString = false, escaped = false, token = ""
    for c in bytes + [0x20] {
        if inString {
            if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
            continue
        }
        if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || "+-.eE".utf8.contains(c) {
            token.unicodeScalars.append(Unicode.Scalar(c))
            continue
        }
        if !token.isEmpty, Double(token).map({ !$0.isFinite }) ?? false { return false }
        token = ""
        if c == UInt8(ascii: "\"") { inString = true }
    }
    return true
}
