import FoundationEssentials
import FuzzSupport
@testable import RegwatchShared

runFuzzer(fuzz)

/// Differential: the aggregator's fast report decoder against the `JSONDecoder` path it accelerates.
/// When the fast one answers, the reference must decode the same envelope; it may only decline.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let frame = fuzzBytes(data, size)
    guard let fast = FastReportDecoder.decode(frame) else { return 0 }
    switch Result(catching: { () throws(WireError) -> WireMessage in try WireCodec().decodeWithFoundation(frame) }) {
    case .success(.report(let reference)):
        fuzzCheck(fast == reference, "fast and JSONDecoder differ:\nfast: \(fast)\nJSONDecoder: \(reference)")
    case .success(let other):
        fuzzCheck(false, "fast path decoded a report where JSONDecoder gave \(other.type.rawValue)")
    case .failure(let error):
        fuzzCheck(false, "fast path decoded a report JSONDecoder refuses: \(error)")
    }
    return 0
}
