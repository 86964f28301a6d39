import FoundationEssentials
import FuzzSupport
import RegwatchShared

runFuzzer(fuzz)

/// Any frame through `WireCodec.decode`, as the aggregator and agent receive them. Beyond "never crashes":
/// whatever decodes re-encodes to a frame that decodes again, and that second frame is a fixed point
/// (encode → decode → encode gives the same bytes). A sender must be able to send anything it can hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let codec = WireCodec()
    guard let message = try? codec.decode(fuzzBytes(data, size)) else { return 0 }
    let first = encode(message, codec)
    let again: WireMessage
    do {
        again = try codec.decode(first)
    } catch {
        fuzzCheck(false, "re-encoded \(message.type.rawValue) does not decode: \(error): \(String(decoding: first, as: UTF8.self))")
        return 0
    }
    fuzzCheck(again.type == message.type && again.sender == message.sender, "re-encoded frame changed type or sender")
    let second = encode(again, codec)
    fuzzCheck(first == second, "encoding is not stable:\n\(String(decoding: first, as: UTF8.self))\n\(String(decoding: second, as: UTF8.self))")
    return 0
}

func encode(_ message: WireMessage, _ codec: WireCodec) -> [UInt8] {
    do {
        switch message {
        case .report(let e): return try codec.encode(e)
        case .pullEvents(let e): return try codec.encode(e)
        case .eventsAck(let e): return try codec.encode(e)
        case .failoverCommand(let e): return try codec.encode(e)
        case .failoverAck(let e): return try codec.encode(e)
        case .join(let e): return try codec.encode(e)
        case .joinResult(let e): return try codec.encode(e)
        case .rotate(let e): return try codec.encode(e)
        case .rotateResult(let e): return try codec.encode(e)
        }
    } catch {
        fuzzCheck(false, "a decoded \(message.type.rawValue) does not encode: \(error)")
        return []
    }
}
