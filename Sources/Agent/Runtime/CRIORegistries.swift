import FoundationEssentials

/// CRI-O / podman / skopeo `registries.conf` (v2): `[[registry]]` entries with their mirrors.
/// The longest matching prefix wins; mirrors are tried in order, then the primary `location`.
public struct CRIORegistries: Sendable, Equatable {
    public struct Mirror: Sendable, Equatable {
        public var location: String
        public var insecure: Bool
        public var pullFromMirror: String?
    }

    public struct Registry: Sendable, Equatable {
        public var prefix: String
        public var location: String
        public var insecure: Bool
        public var blocked: Bool
        public var mirrors: [Mirror]
    }

    public var unqualifiedSearchRegistries: [String]
    public var registries: [Registry]
    /// The file names `unqualified-search-registries` (even empty): a drop-in that does replaces the list.
    var setsSearchRegistries = false

    public init(unqualifiedSearchRegistries: [String], registries: [Registry]) {
        self.unqualifiedSearchRegistries = unqualifiedSearchRegistries
        self.registries = registries
    }

    public static func parse(_ text: String, path: String) throws(RuntimeConfigError) -> CRIORegistries {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(text)
        } catch {
            throw RuntimeConfigError(path: path, line: error.line, column: error.column, message: error.message)
        }
        if table["registries"] != nil && table["registry"] == nil {
            throw RuntimeConfigError(path: path, message: "registries.conf v1 format ([registries.search]) is not supported; use v2 [[registry]] tables")
        }
        var registries: [Registry] = []
        for (i, entry) in (table["registry"]?.array ?? []).enumerated() {
            guard let r = entry.table else { throw RuntimeConfigError(path: path, message: "registry[\(i)] must be a table") }
            let location = r["location"]?.string ?? ""
            let prefix = r["prefix"]?.string ?? location
            guard !prefix.isEmpty else { throw RuntimeConfigError(path: path, message: "registry[\(i)] needs a prefix or a location") }
            var mirrors: [Mirror] = []
            for m in r["mirror"]?.array ?? [] {
                guard let mt = m.table, let loc = mt["location"]?.string else {
                    throw RuntimeConfigError(path: path, message: "registry[\(i)].mirror needs a location")
                }
                mirrors.append(Mirror(location: loc, insecure: mt["insecure"]?.bool ?? false, pullFromMirror: mt["pull-from-mirror"]?.string))
            }
            registries.append(Registry(prefix: prefix, location: location, insecure: r["insecure"]?.bool ?? false, blocked: r["blocked"]?.bool ?? false, mirrors: mirrors))
        }
        let search = table["unqualified-search-registries"]?.array?.compactMap { $0.string } ?? []
        var conf = CRIORegistries(unqualifiedSearchRegistries: search, registries: registries)
        conf.setsSearchRegistries = table["unqualified-search-registries"] != nil
        return conf
    }

    /// A drop-in on top: its entries replace those with the same prefix, a search list it sets wins.
    public mutating func merge(_ dropIn: CRIORegistries) {
        for r in dropIn.registries {
            if let i = registries.firstIndex(where: { $0.prefix == r.prefix }) { registries[i] = r } else { registries.append(r) }
        }
        if dropIn.setsSearchRegistries { unqualifiedSearchRegistries = dropIn.unqualifiedSearchRegistries }
    }

    /// The entry that applies to an image reference such as `docker.io/library/alpine:3.20`: longest prefix.
    public func entry(for reference: String) -> Registry? {
        registries.filter { reference == $0.prefix || reference.hasPrefix($0.prefix + "/") || reference.hasPrefix($0.prefix + ":") }
            .max { $0.prefix.count < $1.prefix.count }
    }
}
