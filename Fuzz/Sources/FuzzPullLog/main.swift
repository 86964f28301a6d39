import FoundationEssentials
import FuzzSupport
import RegwatchAgent
import RegwatchShared

runFuzzer(fuzz)

/// Runtime and kubelet log lines through `PullLogParser.parse`, one line at a time as the log-file and
/// journal sources hand them over. Checked: a failure's detail stays within the 512 characters an event
/// carries, and its class is never `ok` (a line reporting a failure is not a success).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
        guard let failure = PullLogParser.parse(String(line)) else { continue }
        fuzzCheck(failure.detail.count <= 512, "detail of \(failure.detail.count) characters")
        fuzzCheck(failure.errorClass != .ok, "a failure classified ok: \(line)")
    }
    return 0
}
