/// Decodes a streamed HTTP/1.1 response (Docker's `/events`): the status line and headers, then the
/// body, de-chunked when `Transfer-Encoding: chunked`. Pure, so it is tested byte by byte.
struct HTTPStreamDecoder {
    enum Failure: Error, Equatable {
        case malformed(String)
        case status(Int, String)
    }

    private enum Phase { case head, chunkSize, chunkData(Int), chunkDataEnd, identity, done }

    private var phase = Phase.head
    private var buffer: [UInt8] = []
    private(set) var status: Int?
    private(set) var chunked = false

    /// Feeds bytes; returns the body bytes they complete. Throws on a non-2xx status or malformed framing.
    mutating func feed(_ bytes: some Collection<UInt8>) throws(Failure) -> [UInt8] {
        buffer.append(contentsOf: bytes)
        var body: [UInt8] = []
        var i = 0
        defer { buffer.removeFirst(i) }
        while true {
            switch phase {
            case .head:
                guard let end = find([13, 10, 13, 10], in: buffer, from: i) else {
                    if buffer.count - i > 64 * 1024 { throw .malformed("response headers larger than 64 KiB") }
                    return body
                }
                let head = String(decoding: buffer[i..<end], as: UTF8.self)
                i = end + 4
                let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
                let statusParts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
                guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let code = Int(statusParts[1]) else {
                    throw .malformed("not an HTTP/1.x response: \(lines.first.map { String($0.prefix(60)) } ?? "")")
                }
                status = code
                for line in lines.dropFirst() {
                    let kv = line.split(separator: ":", maxSplits: 1)
                    if kv.count == 2, kv[0].lowercased() == "transfer-encoding", kv[1].lowercased().contains("chunked") { chunked = true }
                }
                guard (200..<300).contains(code) else {
                    throw .status(code, statusParts.count > 2 ? String(statusParts[2]) : "")
                }
                phase = chunked ? .chunkSize : .identity
            case .chunkSize:
                guard let end = find([13, 10], in: buffer, from: i) else { return body }
                let sizeText = String(decoding: buffer[i..<end], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16), size >= 0 else {
                    throw .malformed("bad chunk size \"\(sizeText.prefix(20))\"")
                }
                i = end + 2
                phase = size == 0 ? .done : .chunkData(size)
            case .chunkData(let remaining):
                let available = min(remaining, buffer.count - i)
                guard available > 0 else { return body }
                body.append(contentsOf: buffer[i..<i + available])
                i += available
                phase = remaining - available == 0 ? .chunkDataEnd : .chunkData(remaining - available)
            case .chunkDataEnd:
                guard buffer.count - i >= 2 else { return body }
                guard buffer[i] == 13, buffer[i + 1] == 10 else { throw .malformed("chunk not followed by CRLF") }
                i += 2
                phase = .chunkSize
            case .identity:
                body.append(contentsOf: buffer[i...])
                i = buffer.count
                return body
            case .done:
                i = buffer.count
                return body
            }
        }
    }

    var finished: Bool { if case .done = phase { return true }; return false }

    private func find(_ needle: [UInt8], in hay: [UInt8], from start: Int) -> Int? {
        guard hay.count - start >= needle.count else { return nil }
        var j = start
        while j <= hay.count - needle.count {
            if hay[j] == needle[0] && Array(hay[j..<j + needle.count]) == needle { return j }
            j += 1
        }
        return nil
    }
}

private extension String {
    func trimmingCharacters(in c: Character) -> String {
        String(drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }
}
