import FoundationEssentials
import RegwatchShared

/// Changes `registry-mirrors` in a Docker `daemon.json` and nothing else.
///
/// The edit is textual: only the bytes of the `registry-mirrors` value are replaced (or one member is
/// added after the opening brace, indented like its neighbours), so every other key, value, key order,
/// indentation and number spelling stays exactly as the operator wrote it. A file that does not pass
/// the same strict syntax check dockerd applies is never rewritten (it is reported instead: dockerd
/// would not start with it either). The result is parsed back and compared with the original, member by
/// member, before anyone writes it.
public enum DaemonJSONEditor {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The new file content with `mirrors` as `registry-mirrors`.
    public static func setMirrors(_ mirrors: [String], in original: [UInt8]) throws(Failure) -> [UInt8] {
        let text = original.isEmpty || original.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) ? Array("{}\n".utf8) : original
        let parsed: (members: [StrictJSON.Member], object: Range<Int>?)
        switch StrictJSON.topLevelMembers(text) {
        case .success(let p): parsed = p
        case .failure(let v): throw Failure(message: "daemon.json is not valid JSON at byte \(v.offset): \(v.message); not rewriting it")
        }
        guard let object = parsed.object else { throw Failure(message: "daemon.json's top level is not an object; not rewriting it") }
        // Valid syntax dockerd still refuses to read (a number beyond a Double): not this edit's failure to report.
        guard JSONValue.parse(text) != nil else { throw Failure(message: "daemon.json has a value that cannot be read (a number out of range?); not rewriting it") }
        let list = "[" + mirrors.map { JSONText.quoted($0) }.joined(separator: ", ") + "]"
        let key = "registry-mirrors"
        let matching = parsed.members.filter { decodeKey(text[$0.keyRange]) == key }
        guard matching.count <= 1 else { throw Failure(message: "daemon.json has registry-mirrors twice; not rewriting it") }
        var out = text
        if let member = matching.first {
            out.replaceSubrange(member.valueRange, with: Array(list.utf8))
        } else if let first = parsed.members.first {
            // Before the first member: on a line of its own with its indentation, or inline after `{`.
            let at = first.keyRange.lowerBound
            let lineStart = text[..<at].lastIndex(of: 0x0A).map { $0 + 1 }
            let lead = lineStart.map { Array(text[$0..<at]) } ?? []
            let ownLine = lineStart != nil && lead.allSatisfy { $0 == 0x20 || $0 == 0x09 }
            let insert = "\"\(key)\": \(list)," + (ownLine ? "\n" + String(decoding: lead, as: UTF8.self) : " ")
            out.replaceSubrange(at..<at, with: Array(insert.utf8))
        } else {
            out.replaceSubrange(object, with: Array("{\n  \"\(key)\": \(list)\n}".utf8))
        }
        try verify(original: text, edited: out, mirrors: mirrors)
        return out
    }

    /// The edit changed `registry-mirrors` and nothing else.
    static func verify(original: [UInt8], edited: [UInt8], mirrors: [String]) throws(Failure) {
        if let v = StrictJSON.check(edited) { throw Failure(message: "internal error: the edit is not valid JSON (\(v.message)); not writing it") }
        guard var before = JSONValue.parse(original)?.object, var after = JSONValue.parse(edited)?.object else {
            throw Failure(message: "internal error: cannot read the edit back; not writing it")
        }
        guard after.removeValue(forKey: "registry-mirrors")?.strings == mirrors else {
            throw Failure(message: "internal error: registry-mirrors did not read back as written; not writing it")
        }
        before.removeValue(forKey: "registry-mirrors")
        guard before == after else {
            throw Failure(message: "internal error: the edit changed other keys; not writing it")
        }
    }

    static func decodeKey(_ bytes: ArraySlice<UInt8>) -> String? {
        JSONValue.parse(bytes)?.string
    }
}
