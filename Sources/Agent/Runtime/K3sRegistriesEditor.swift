import FoundationEssentials
import RegwatchShared

/// Sets `mirrors.<registry>.endpoint` in a k3s/RKE2 `registries.yaml`, keeping every other key and value:
/// k3s writes containerd's `hosts.toml` files from this file at every start, so a mirror order changed
/// only in `hosts.toml` would be lost at the next restart.
///
/// The file is parsed, changed in one place and written back in block style (comments are not kept), then
/// read back: anything but that one list differing is refused before a byte is written.
public enum K3sRegistriesEditor {
    public static func setMirrors(_ mirrors: [String], registry: String, in text: String, path: String) throws(RuntimeConfigError) -> String {
        let root: YAMLNode
        do {
            root = try YAMLParser.parse(text) ?? YAMLNode(.mapping([]), line: 1)
        } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: 1, message: error.problem)
        }
        let doc = root.isNull ? YAMLNode(.mapping([]), line: 1) : root
        guard var top = doc.mapping else { throw RuntimeConfigError(path: path, line: doc.line, column: 1, message: "top level must be a mapping") }
        let endpoint = YAMLNode(.sequence(mirrors.map { YAMLNode(.scalar($0, quoted: true), line: 0) }), line: 0)

        var mirrorsNode = top.first { $0.key == "mirrors" }?.value ?? YAMLNode(.mapping([]), line: 0)
        if mirrorsNode.isNull { mirrorsNode = YAMLNode(.mapping([]), line: 0) }
        guard var entries = mirrorsNode.mapping else {
            throw RuntimeConfigError(path: path, line: mirrorsNode.line, column: 1, message: "mirrors must be a mapping")
        }
        if let i = entries.firstIndex(where: { $0.key == registry }) {
            var value = entries[i].value
            if value.isNull { value = YAMLNode(.mapping([]), line: 0) }
            guard var fields = value.mapping else {
                throw RuntimeConfigError(path: path, line: value.line, column: 1, message: "mirrors.\(registry) must be a mapping")
            }
            if let j = fields.firstIndex(where: { $0.key == "endpoint" }) { fields[j].value = endpoint } else {
                fields.insert(.init(key: "endpoint", keyLine: 0, value: endpoint), at: 0)
            }
            entries[i].value = YAMLNode(.mapping(fields), line: value.line)
        } else {
            entries.append(.init(key: registry, keyLine: 0, value: YAMLNode(.mapping([.init(key: "endpoint", keyLine: 0, value: endpoint)]), line: 0)))
        }
        let newMirrors = YAMLNode(.mapping(entries), line: mirrorsNode.line)
        if let i = top.firstIndex(where: { $0.key == "mirrors" }) { top[i].value = newMirrors } else {
            top.insert(.init(key: "mirrors", keyLine: 0, value: newMirrors), at: 0)
        }
        let expected = YAMLNode(.mapping(top), line: 1)
        let out = "# Mirror order set by regwatch-agent failover (restore: regwatch-agent restore); other keys kept, comments not.\n"
            + YAMLEmitter.emit(expected)

        // Read back: the same document but for that one list, and k3s' own reading of it.
        let back: YAMLNode?
        do { back = try YAMLParser.parse(out) } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: 1, message: "rewritten file does not parse: \(error.problem)")
        }
        guard let back, back.sameContent(as: expected) else {
            throw RuntimeConfigError(path: path, message: "rewritten file does not read back as written")
        }
        let parsed = try K3sRegistries.parse(out, path: path)
        guard parsed.mirrors.first(where: { $0.registry == registry })?.endpoints == mirrors else {
            throw RuntimeConfigError(path: path, message: "rewritten file does not carry the new mirror order")
        }
        return out
    }
}
