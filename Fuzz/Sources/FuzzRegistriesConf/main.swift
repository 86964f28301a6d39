import FoundationEssentials
import FuzzSupport
import RegwatchAgent

runFuzzer(fuzz)

/// CRI-O/podman `registries.conf` (`CRIORegistries.parse`, the TOML reader under it) and the failover
/// edit of it (`RegistriesConfEditor.setMirrors`). The editor checks its own output and refuses what it
/// cannot read back; checked here: what it returns is a file the reader takes, with the new mirrors in
/// order, for the `docker.io` entry the edit aimed at.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    guard (try? CRIORegistries.parse(text, path: "registries.conf")) != nil else { return 0 }
    let mirrors = [
        RegistriesConfEditor.Mirror(url: "https://mirror-a.example:5000/", insecure: false),
        RegistriesConfEditor.Mirror(url: "http://10.0.0.5:5000", insecure: true),
    ]
    guard let out = try? RegistriesConfEditor.setMirrors(mirrors, registry: "docker.io", upstream: "https://registry-1.docker.io", in: text, path: "registries.conf") else { return 0 }
    do {
        let after = try CRIORegistries.parse(out, path: "registries.conf")
        let entry = after.registries.first { $0.prefix == "docker.io" }
        fuzzCheck(entry?.mirrors.map(\.location) == ["mirror-a.example:5000", "10.0.0.5:5000"], "the edit does not carry the mirrors:\n\(out)")
    } catch {
        fuzzCheck(false, "the edit does not parse: \(error)\n\(out)")
    }
    return 0
}
