import FoundationEssentials
import FuzzSupport
import RegwatchAgent
import RegwatchShared

runFuzzer(fuzz)

/// The agent's config loader on any text (`AgentConfig.load` after the file is read): YAML parse, then
/// every key's validation. The YAML reader also has to agree with its writer, which the k3s failover
/// uses: a document it reads, written back by `YAMLEmitter`, reads as the same content.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // As `ConfigNode.load`: a file that is not UTF-8 is refused before parsing.
    guard let text = String(validating: fuzzBytes(data, size), as: UTF8.self) else { return 0 }
    if case .success(let node?) = Result(catching: { () throws(YAMLError) -> YAMLNode? in try YAMLParser.parse(text) }) {
        let emitted = YAMLEmitter.emit(node)
        do {
            let back = try YAMLParser.parse(emitted)
            fuzzCheck(back.map { $0.sameContent(as: node) } ?? node.isNull,
                      "emitted YAML reads back differently:\n\(emitted.debugDescription)\nread: \(node)\nread back: \(String(describing: back))")
        } catch {
            fuzzCheck(false, "emitted YAML does not parse (line \(error.line): \(error.problem)):\n\(emitted.debugDescription)")
        }
    }
    let environment = ["NODE_NAME": "node-1", "ZONE": "z1", "EMPTY": ""]
    _ = try? AgentConfig.parse(ConfigNode.parse(text, file: "agent.yaml", environment: environment), defaultHostID: "fuzz-host")
    return 0
}
