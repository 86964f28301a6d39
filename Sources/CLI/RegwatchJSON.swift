import FoundationEssentials
import RegwatchShared

/// `--json` output uses the wire's date format (RFC 3339 UTC), pretty-printed.
enum RegwatchJSON {
    static func encoder() -> JSONEncoder { JSONCoding.encoder(pretty: true) }
}

/// Left-aligned text columns for human output.
public func formatTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell + String(repeating: " ", count: max(0, widths[i] - cell.count)) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
