import FoundationEssentials

/// Encodes envelopes to JSON frames and decodes frames into allowlisted ``WireMessage`` values.
///
/// JSON because every field is then inspectable with `jq` in a packet capture and an unknown field is
/// simply skipped, which is what lets an older agent talk to a newer aggregator.
public struct WireCodec: Sendable {
    public init() {}

    public func encode<Body: WireBody>(_ envelope: Envelope<Body>) throws -> [UInt8] {
        Array(try JSONCoding.encoder().encode(envelope))
    }

    /// Decodes a frame. Throws ``WireError``; never crashes on hostile input.
    ///
    /// Reports, the bulk of the traffic, are read by ``FastReportDecoder`` first; whatever it declines
    /// (anything but a plainly valid report) is decoded here by `JSONDecoder`, which also words every error.
    public func decode(_ frame: some Collection<UInt8>) throws(WireError) -> WireMessage {
        guard !frame.isEmpty else { throw .empty }
        if let report = FastReportDecoder.decode(frame) { return .report(report) }
        return try decodeWithFoundation(frame)
    }

    /// The reference decoder: `JSONDecoder`, header first so the allowlist is applied before the body.
    func decodeWithFoundation(_ frame: some Collection<UInt8>) throws(WireError) -> WireMessage {
        guard !frame.isEmpty else { throw .empty }
        let data = Data(frame)
        let decoder = JSONCoding.decoder()
        let header: EnvelopeHeader
        do {
            header = try decoder.decode(EnvelopeHeader.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty {
                throw .notJSON(Self.describe(error))
            }
            throw .missingHeader(Self.describe(error))
        } catch {
            throw .notJSON(String(describing: error))
        }
        guard header.v >= WireProtocol.minimumVersion, header.v <= WireProtocol.version else {
            throw .unsupportedVersion(header.v)
        }
        guard let type = MessageType(rawValue: header.type) else { throw .unknownType(header.type) }
        do {
            switch type {
            case .report: return .report(try decoder.decode(Envelope<Report>.self, from: data))
            case .pullEvents: return .pullEvents(try decoder.decode(Envelope<PullEventBatch>.self, from: data))
            case .eventsAck: return .eventsAck(try decoder.decode(Envelope<EventsAck>.self, from: data))
            case .failoverCommand: return .failoverCommand(try decoder.decode(Envelope<SignedFailoverCommand>.self, from: data))
            case .failoverAck: return .failoverAck(try decoder.decode(Envelope<FailoverAck>.self, from: data))
            case .join: return .join(try decoder.decode(Envelope<JoinRequest>.self, from: data))
            case .joinResult: return .joinResult(try decoder.decode(Envelope<JoinResult>.self, from: data))
            case .rotate: return .rotate(try decoder.decode(Envelope<RotateRequest>.self, from: data))
            case .rotateResult: return .rotateResult(try decoder.decode(Envelope<RotateResult>.self, from: data))
            }
        } catch {
            throw .invalidBody(type: type.rawValue, detail: Self.describe(error))
        }
    }

    /// One line naming the JSON path at fault.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        func path(_ ctx: DecodingError.Context) -> String {
            let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "$" : p.replacing(".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            let base = path(ctx)
            return "missing field \(base == "$" ? key.stringValue : base + "." + key.stringValue)"
        case .typeMismatch(let type, let ctx): return "\(path(ctx)): expected \(type)"
        case .valueNotFound(let type, let ctx): return "\(path(ctx)): null where \(type) is required"
        case .dataCorrupted(let ctx):
            let underlying = ctx.underlyingError.map { String(describing: $0) }
            return "\(path(ctx)): \(underlying ?? ctx.debugDescription)"
        @unknown default: return String(describing: error)
        }
    }
}

/// The one JSON configuration used on the wire, in fixtures and in `--json` output:
/// RFC 3339 UTC times with milliseconds (plain seconds accepted on input), sorted keys.
public enum JSONCoding {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(RFC3339.format(date))
        }
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = RFC3339.parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(s.prefix(40))")
            }
            return date
        }
        return d
    }
}

/// RFC 3339 UTC timestamps, the format of every time regwatch prints or sends.
public enum RFC3339 {
    /// Rounded to the millisecond. Foundation's formatter truncates the fraction, and the Double read from
    /// `.005` lies just below it: each decode and re-encode lost a millisecond (found by fuzzing,
    /// Fuzz/Sources/FuzzWireDecode). So the whole seconds are formatted, the milliseconds written here.
    public static func format(_ date: Date) -> String {
        let ms = (date.timeIntervalSinceReferenceDate * 1000).rounded()
        guard let total = Int64(exactly: ms) else { return formatted(date) }
        let (seconds, fraction) = (total >= 0 ? total / 1000 : (total - 999) / 1000, ((total % 1000) + 1000) % 1000)
        let whole = formatted(Date(timeIntervalSinceReferenceDate: Double(seconds)))
        guard let dot = whole.lastRange(of: ".000") else { return whole }
        let digits = String(fraction)
        return whole[..<dot.lowerBound] + "." + String(repeating: "0", count: 3 - digits.count) + digits + whole[dot.upperBound...]
    }

    private static func formatted(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
            .replacing("+0000", with: "Z")
    }

    public static func parse(_ string: String) -> Date? {
        if let d = try? Date(string, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)) {
            return d
        }
        return try? Date(string, strategy: .iso8601)
    }
}
