import Foundation
import RegwatchShared

/// JSON text for the store's JSON columns, written by hand on the ingest path.
///
/// Why not `JSONEncoder`: labels and mirror pools are encoded for every report, and at tens of thousands
/// of reports per second the encoder's per-call setup dominates; those are written as bytes
/// (``JSONBytes``) and bound as such. The output is what `JSONEncoder` with
/// `.sortedKeys` produces for the same values, so reading back uses the ordinary `JSONDecoder`.
enum StoreJSON {
    static func bytes(_ dict: [String: String]) -> [UInt8] {
        if dict.isEmpty { return Array("{}".utf8) }
        var out = JSONBytes(capacity: 16 + dict.count * 32)
        out.raw("{")
        for (n, key) in dict.keys.sorted().enumerated() {
            if n > 0 { out.raw(",") }
            out.quoted(key)
            out.raw(":")
            out.quoted(dict[key]!)
        }
        out.raw("}")
        return out.bytes
    }

    static func object(_ dict: [String: [String]]) -> String {
        if dict.isEmpty { return "{}" }
        var out = "{"
        for (n, key) in dict.keys.sorted().enumerated() {
            if n > 0 { out += "," }
            appendString(key, to: &out)
            out += ":["
            for (m, v) in dict[key]!.enumerated() {
                if m > 0 { out += "," }
                appendString(v, to: &out)
            }
            out += "]"
        }
        return out + "}"
    }

    /// Mirror pools in `MirrorSpec`'s object form, so every flag survives the round trip.
    static func bytes(_ pools: [String: [MirrorSpec]]) -> [UInt8] {
        if pools.isEmpty { return Array("{}".utf8) }
        var out = JSONBytes(capacity: 256)
        out.raw("{")
        for (n, key) in pools.keys.sorted().enumerated() {
            if n > 0 { out.raw(",") }
            out.quoted(key)
            out.raw(":[")
            for (m, spec) in pools[key]!.enumerated() {
                if m > 0 { out.raw(",") }
                out.raw(spec.authenticated ? "{\"authenticated\":true" : "{\"authenticated\":false")
                out.raw(spec.insecure ? ",\"insecure\":true" : ",\"insecure\":false")
                out.raw(spec.trusted ? ",\"trusted\":true,\"url\":" : ",\"trusted\":false,\"url\":")
                out.quoted(spec.url)
                out.raw("}")
            }
            out.raw("]")
        }
        out.raw("}")
        return out.bytes
    }

    /// Pull-event source states in `EventSourceStatus`'s object form.
    static func bytes(_ sources: [EventSourceStatus]) -> [UInt8] {
        if sources.isEmpty { return Array("[]".utf8) }
        var out = JSONBytes(capacity: 128)
        out.raw("[")
        for (n, source) in sources.enumerated() {
            if n > 0 { out.raw(",") }
            out.raw("{\"detail\":")
            out.quoted(source.detail)
            out.raw(",\"name\":")
            out.quoted(source.name)
            out.raw(",\"state\":")
            out.quoted(source.state.rawValue)
            out.raw("}")
        }
        out.raw("]")
        return out.bytes
    }

    /// Counts per key, e.g. failing classes: `{"tcp_timeout":3}`.
    static func object(_ counts: [String: Int]) -> String {
        if counts.isEmpty { return "{}" }
        var out = "{"
        for (n, key) in counts.keys.sorted().enumerated() {
            if n > 0 { out += "," }
            appendString(key, to: &out)
            out += ":\(counts[key]!)"
        }
        return out + "}"
    }

    static func appendString(_ s: String, to out: inout String) {
        JSONText.appendQuoted(s, to: &out)
    }

    /// Decodes a JSON column; unreadable text yields `value` so one bad row cannot fail a whole listing.
    static func decode<T: Decodable>(_ type: T.Type, _ text: String?, default value: T, decoder: JSONDecoder) -> T {
        guard let text, let data = text.data(using: .utf8) else { return value }
        return (try? decoder.decode(T.self, from: data)) ?? value
    }
}
