import Foundation
@testable import RegwatchAgent
import Testing

@Suite("registries.conf editor")
struct RegistriesConfEditorTests {
    static let original = """
    # Site registries: keep the comments.
    unqualified-search-registries = ["docker.io", "quay.io"]
    short-name-mode = "enforcing"

    [[registry]]
    prefix = "docker.io"
    location = "registry-1.docker.io"

    [[registry.mirror]]
    location = "mirror-a:5000"

    [[registry.mirror]]
    location = "mirror-b:5000"
    insecure = true

    [[registry]]
    prefix = "quay.io"
    location = "quay.io"
    blocked = false

    [[registry.mirror]]
    location = "quay-cache:5000"

    [aliases]
    "fedora" = "registry.fedoraproject.org/fedora"

    """

    @Test("the docker.io block's mirrors are replaced in the new order; comments, other blocks and tables stay")
    func replaces() throws {
        let out = try RegistriesConfEditor.setMirrors([.init(url: "http://mirror-b:5000", insecure: true), .init(url: "https://mirror-a:5000/", insecure: false)],
                                                      registry: "docker.io", upstream: "https://registry-1.docker.io", in: Self.original, path: "registries.conf")
        let parsed = try CRIORegistries.parse(out, path: "x")
        let docker = try #require(parsed.entry(for: "docker.io/library/alpine"))
        #expect(docker.mirrors.map(\.location) == ["mirror-b:5000", "mirror-a:5000"])
        #expect(docker.mirrors.map(\.insecure) == [true, false])
        #expect(parsed.entry(for: "quay.io/x")?.mirrors.map(\.location) == ["quay-cache:5000"])
        #expect(out.hasPrefix("# Site registries: keep the comments.\nunqualified-search-registries = [\"docker.io\", \"quay.io\"]\nshort-name-mode = \"enforcing\"\n"))
        #expect(out.contains("[aliases]\n\"fedora\" = \"registry.fedoraproject.org/fedora\""))
        // Everything from the quay.io block on is byte-identical.
        let tail = Self.original[Self.original.range(of: "[[registry]]\nprefix = \"quay.io\"")!.lowerBound...]
        #expect(out.hasSuffix(String(tail)))
    }

    @Test("no mirrors empties the block; an unknown registry gets a new block at the end")
    func emptyAndNew() throws {
        let none = try RegistriesConfEditor.setMirrors([], registry: "docker.io", upstream: "https://registry-1.docker.io", in: Self.original, path: "x")
        #expect(try CRIORegistries.parse(none, path: "x").entry(for: "docker.io/a")?.mirrors.isEmpty == true)
        let added = try RegistriesConfEditor.setMirrors([.init(url: "https://cache.example:443", insecure: false)], registry: "registry.example:5000",
                                                        upstream: "https://registry.example:5000", in: Self.original, path: "x")
        let parsed = try CRIORegistries.parse(added, path: "x")
        #expect(parsed.entry(for: "registry.example:5000/team/app")?.mirrors.map(\.location) == ["cache.example:443"])
        #expect(parsed.entry(for: "registry.example:5000/team/app")?.location == "registry.example:5000")
        #expect(added.hasPrefix(Self.original.trimmingCharacters(in: .newlines)))
    }

    @Test("a file that does not parse is refused, not rewritten")
    func refuses() {
        #expect(throws: RuntimeConfigError.self) {
            _ = try RegistriesConfEditor.setMirrors([], registry: "docker.io", upstream: "x", in: "[[registry]\nprefix = ", path: "x")
        }
    }
}
