import FoundationEssentials
import FuzzSupport
import RegwatchShared

runFuzzer(fuzz)

/// `ErrorClassifier` on any message, registry error body and status. Checked: the message rules ignore
/// ASCII case (runtimes differ in capitalisation, the patterns are lowercase), and a registry error body
/// classifies as its first error code does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    let message = String(decoding: bytes, as: UTF8.self)
    let cls = ErrorClassifier.classify(message: message)
    let swapped = String(decoding: bytes.map { b -> UInt8 in
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): b - 32
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): b + 32
        default: b
        }
    }, as: UTF8.self)
    fuzzCheck(ErrorClassifier.classify(message: swapped) == cls, "ASCII case changes the class of \(message.debugDescription)")

    if let fromBody = ErrorClassifier.classify(registryErrorBody: bytes) {
        struct Body: Decodable { struct Item: Decodable { var code: String }; var errors: [Item] }
        let first = (try? JSONDecoder().decode(Body.self, from: Data(bytes)))?.errors.first?.code
        fuzzCheck(first.map { ErrorClassifier.classify(registryErrorCode: $0) } == fromBody, "body and code disagree")
    }
    if bytes.count >= 2 {
        let status = Int(bytes[0]) << 8 | Int(bytes[1])
        for kind in [ErrorClassifier.RequestKind.ping, .token, .manifest] {
            let c = ErrorClassifier.classify(httpStatus: status, kind: kind)
            fuzzCheck((200..<300).contains(status) == (c == nil) || (status == 401 && kind == .ping), "status \(status) on \(kind)")
        }
    }
    return 0
}
