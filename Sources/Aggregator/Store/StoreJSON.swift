import Foundation
import RegwatchShared

/// JSON text for the store's JSON columns, written by hand on the ingest path.
///
/// Why not `JSONEncoder`: labels and mirror pools are encoded for every report, and at tens of thousands
/// of reports per second the encoder's per-call setup dominates. The output is what `JSONEncoder` with
/// `.sortedKeys` produces for the same values, so reading back uses the ordinary `JSONDecoder`.
enum StoreJSON {
    static func object(_ dict: [String: String]) -> String {
        if dict.isEmpty { return "{}" }
        var out = "{"
        for (n, key) in dict.keys.sorted().enumerated() {
            if n > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            appendString(dict[key]!, to: &out)
        }
        return out + "}"
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
    static func object(_ pools: [String: [MirrorSpec]]) -> String {
        if pools.isEmpty { return "{}" }
        var out = "{"
        for (n, key) in pools.keys.sorted().enumerated() {
            if n > 0 { out += "," }
            appendString(key, to: &out)
            out += ":["
            for (m, spec) in pools[key]!.enumerated() {
                if m > 0 { out += "," }
                out += "{\"authenticated\":\(spec.authenticated),\"insecure\":\(spec.insecure),\"trusted\":\(spec.trusted),\"url\":"
                appendString(spec.url, to: &out)
                out += "}"
            }
            out += "]"
        }
        return out + "}"
    }

    /// Pull-event source states in `EventSourceStatus`'s object form.
    static func array(_ sources: [EventSourceStatus]) -> String {
        if sources.isEmpty { return "[]" }
        var out = "["
        for (n, source) in sources.enumerated() {
            if n > 0 { out += "," }
            out += "{\"detail\":"
            appendString(source.detail, to: &out)
            out += ",\"name\":"
            appendString(source.name, to: &out)
            out += ",\"state\":"
            appendString(source.state.rawValue, to: &out)
            out += "}"
        }
        return out + "]"
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
