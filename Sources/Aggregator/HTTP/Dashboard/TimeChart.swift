import Foundation

/// Inline SVG over one time window, so every chart of a page shares the same horizontal axis: a bar at
/// 14:05 in the outage timeline sits above the latency change and the failover generation of 14:05.
///
/// The SVGs stretch to the page width (`preserveAspectRatio="none"`); strokes keep their width
/// (`vector-effect`), and text stays in HTML, where it neither stretches nor overflows.
struct TimeChart {
    let since: Date
    let until: Date
    /// The viewBox width: the horizontal resolution, not a size on screen.
    static let width = 720.0

    func x(_ date: Date) -> Double {
        let span = max(1, until.timeIntervalSince(since))
        return min(Self.width, max(0, date.timeIntervalSince(since) / span * Self.width))
    }

    /// The hour labels under a chart: five marks from the window's start to now.
    func axis() -> String {
        let hours = until.timeIntervalSince(since) / 3600
        let marks = (0...4).map { i -> String in
            let back = hours * Double(4 - i) / 4
            return i == 4 ? "now" : "−\(Int(back.rounded()))h"
        }
        return "<div class=\"axis\">" + marks.map { "<span>\($0)</span>" }.joined() + "</div>\n"
    }

    struct Bar {
        var from: Date
        var to: Date
        var fill: String
        var title: String
    }

    /// One row of bars (outages, generations); each bar at least a pixel wide so a short one shows.
    func bars(_ bars: [Bar], height: Double = 14) -> String {
        var svg = "<svg viewBox=\"0 0 \(Self.width) \(height)\" preserveAspectRatio=\"none\" role=\"img\">"
        for b in bars {
            let x0 = x(b.from), x1 = max(x(b.to), x0 + 1.5)
            svg += "<rect x=\"\(fmt(x0))\" y=\"0\" width=\"\(fmt(x1 - x0))\" height=\"\(fmt(height))\" fill=\"\(b.fill)\">"
            svg += "<title>\(HTMLDocument.escape(b.title))</title></rect>"
        }
        return svg + "</svg>"
    }

    struct Series {
        var points: [(Date, Double)]
        var stroke: String
        var dashed = false
    }

    /// Lines over time scaled to `0...maxValue` (bottom to top); a gap of more than `gap` between two
    /// points breaks the line, so a silent hour is not drawn as a straight slope.
    func sparkline(_ series: [Series], maxValue: Double, title: String, gap: TimeInterval = 15 * 60, height: Double = 36) -> String {
        var svg = "<svg class=\"spark\" viewBox=\"0 0 \(Self.width) \(height)\" preserveAspectRatio=\"none\" role=\"img\"><title>\(HTMLDocument.escape(title))</title>"
        let top = max(maxValue, 1e-9)
        for s in series {
            var runs: [[(Date, Double)]] = []
            for p in s.points {
                if let last = runs.last?.last, p.0.timeIntervalSince(last.0) <= gap { runs[runs.count - 1].append(p) } else { runs.append([p]) }
            }
            for run in runs {
                var xy = run.map { (x($0.0), height - 1 - min(1, max(0, $0.1 / top)) * (height - 2)) }
                if xy.count == 1 { xy.append((xy[0].0 + 1.5, xy[0].1)) }  // a lone reading still shows
                let coords = xy.map { "\(fmt($0.0)),\(fmt($0.1))" }
                svg += "<polyline fill=\"none\" stroke=\"\(s.stroke)\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\"\(s.dashed ? " stroke-dasharray=\"4 3\"" : "") points=\"\(coords.joined(separator: " "))\"/>"
            }
        }
        return svg + "</svg>"
    }

    private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
}
