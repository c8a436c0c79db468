import VxmonWire

/// Draws journeys as a sequence diagram, an SVG file or an HTML page holding the same SVG (no
/// scripts: a browser shows it as it is): one lane per node, named at the top, time flowing down.
/// Each exchange (a request and its reply, or a journey alone) is a block under a header naming the
/// packet and its VNIs; each hop is a dot on its node's lane, labelled with its observation point and
/// interface, reached by an arrow from the hop before (a step down the lane within a node, an arrow
/// across to the other lane between nodes) that carries the time from that hop. Drops are red, with
/// their reason; a lost or unfinished journey ends in a grey dashed arrow to where the next hop was
/// expected, saying after which hop it stopped.
///
/// The labels are read when the exchange comes (interface names, clock corrections), as the text
/// and JSON outputs read them, so the numbers agree. Everything taken from outside (node, interface
/// and pod names) is XML-escaped, with controls and bidi characters replaced by `?`, and cut to a
/// length. The size is bounded: `limit` exchanges, `maxHopsDrawn` hops per journey, `maxLanes` lanes.
public final class JourneyDrawing: JourneyOutput {
    public let limit: Int
    public private(set) var exchanges: [[Journey]] = []
    /// Exchanges past `limit`, not drawn.
    public private(set) var notDrawn = 0
    private var plans: [ExchangePlan] = []

    /// Hops drawn per journey; more are counted in a note.
    public static let maxHopsDrawn = 24
    /// Lanes drawn; the nodes past them share one last lane.
    public static let maxLanes = 12

    public init(limit: Int) { self.limit = limit }

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder) {
        guard exchanges.count < limit else {
            notDrawn += 1
            return
        }
        exchanges.append(Array(journeys))
        plans.append(ExchangePlan(journeys, builder))
    }

    /// The drawing as a standalone SVG document.
    public func svg(_ builder: JourneyBuilder) -> String {
        let out = OutputBuffer(capacity: 1 << 16)
        out.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        render(builder, into: out)
        return out.string
    }

    /// An HTML page with a title and the drawing as inline SVG; no scripts, and a content security
    /// policy that allows none.
    public func html(_ builder: JourneyBuilder) -> String {
        let out = OutputBuffer(capacity: 1 << 16)
        out.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        out.append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n")
        out.append("<title>")
        Self.appendXML(title, into: out)
        out.append("</title>\n<style>body{margin:16px;background:#fff;color:#1a1a1a;font-family:monospace}")
        out.append("svg{display:block;max-width:none}</style>\n</head>\n<body>\n")
        render(builder, into: out)
        out.append("</body>\n</html>\n")
        return out.string
    }

    private var title: String {
        let n = plans.count
        var t = "vxmon journey: \(n) exchange\(n == 1 ? "" : "s")"
        if notDrawn > 0 { t += " drawn, \(notDrawn) more not drawn (--draw)" }
        return t
    }

    // MARK: What is drawn, read when the exchange comes

    struct HopPlan {
        var node: UInt16
        /// Observation point, `drop`, `policy-verdict`.
        var point: String
        /// Interface name, `if<N>`, or empty.
        var interface: String
        /// Time from the hop before (`+54.191µs`); nil for the first hop.
        var latency: String?
        /// The tunnel, a drop's reason, a verdict, a clock correction, the pod at either end.
        var detail: String?
        var isDrop: Bool
    }

    struct JourneyPlan {
        var heading: String
        var role: JourneyRole
        var outcome: JourneyOutcome
        var hops: [HopPlan]
        /// Where a lost or unfinished journey stopped, and what never came.
        var end: String?
        var endDetail: String?
        /// The node of the hop it waited for, when known.
        var endNode: UInt16?
        var notes: [String]
    }

    struct ExchangePlan {
        var heading: String
        var subheading: String
        var journeys: [JourneyPlan]

        init(_ journeys: UnsafeBufferPointer<Journey>, _ b: JourneyBuilder) {
            self.journeys = journeys.map { JourneyPlan($0, b) }
            guard let first = journeys.first else {
                heading = ""
                subheading = ""
                return
            }
            let o = OutputBuffer(capacity: 128)
            JourneyDescription.packet(first.key, into: o)
            heading = o.string.replacing(" -> ", with: " → ")
            var sub = ""
            let from = b.pods.pod(at: first.key.source)?.name
            let to = b.pods.pod(at: first.key.destination)?.name
            if from != nil || to != nil {
                o.removeAll()
                o.ip(first.key.source)
                let source = o.string
                o.removeAll()
                o.ip(first.key.destination)
                sub = "\(from ?? source) → \(to ?? o.string)"
            }
            var vnis: [String] = []
            for j in journeys {
                let name = j.role == .single ? "VNI" : "\(j.role.name) VNI"
                vnis.append(j.vni.map { "\(name) \($0)" } ?? "\(name) not seen")
            }
            if journeys.contains(where: { $0.vni != nil }) {
                sub += (sub.isEmpty ? "" : " · ") + vnis.joined(separator: ", ")
            }
            subheading = sub
        }
    }

    // MARK: Layout and SVG

    /// Font sizes and the advance of one character of the generic monospace font (DejaVu Sans Mono and
    /// Liberation Mono advance 0.6 em; a little more is allowed).
    private static let font = 12.0
    private static let small = 10.0
    private static let cw = 7.3
    private static let scw = 6.1
    private static let margin = 16.0
    private static let maxNameChars = 40
    private static let maxHeadingChars = 150

    private static let ink = "#1a1a1a"
    private static let grey = "#5f6b73"
    private static let red = "#d32f2f"
    private static let lostGrey = "#8c959c"
    private static func color(_ role: JourneyRole) -> String {
        switch role {
        case .request: "#1f5fa8"
        case .reply: "#2e7d32"
        case .single: "#6a4c9c"
        }
    }

    /// Where each drawn hop goes: its lane, and which side of the lane its label is on.
    private struct Placement {
        var lanes: [Int] = []
        var left: [Bool] = []
        var endLane: Int?
    }

    private func render(_ b: JourneyBuilder, into out: OutputBuffer) {
        let cw = Self.cw
        let scw = Self.scw
        let m = Self.margin
        // Lanes, in the order nodes first appear; past maxLanes, one shared lane.
        var seen: Set<UInt16> = []
        var order: [UInt16] = []
        for e in plans {
            for j in e.journeys {
                for n in j.hops.map(\.node) + (j.endNode.map { [$0] } ?? []) where seen.insert(n).inserted { order.append(n) }
            }
        }
        let overflow = order.count > Self.maxLanes ? order.count - (Self.maxLanes - 1) : 0
        let laneNodes = overflow > 0 ? Array(order.prefix(Self.maxLanes - 1)) : order
        var laneOf: [UInt16: Int] = [:]
        for (l, n) in laneNodes.enumerated() { laneOf[n] = l }
        func lane(_ node: UInt16) -> Int { laneOf[node] ?? Self.maxLanes - 1 }
        var places: [[Placement]] = []
        for e in plans {
            var row: [Placement] = []
            for j in e.journeys {
                var p = Placement()
                p.lanes = j.hops.map { lane($0.node) }
                p.endLane = j.endNode.map { lane($0) }
                row.append(p)
            }
            places.append(row)
        }
        let laneCount = overflow > 0 ? Self.maxLanes : laneNodes.count
        func laneName(_ l: Int) -> String {
            if overflow > 0 && l == Self.maxLanes - 1 { return "\(overflow) other node\(overflow == 1 ? "" : "s")" }
            return b.nodeName(laneNodes[l]).map { $0.isEmpty ? "(empty name)" : $0 } ?? "(no node)"
        }
        func isShared(_ node: UInt16) -> Bool { overflow > 0 && laneOf[node] == nil }

        // What is beside a lane: outside the first and last lanes, it widens the margins; between
        // lanes, the gap (one hop per row, so things beside two lanes never share a row).
        var between = 0.0
        var leftOfFirst = 0.0
        var rightOfLast = 0.0
        func beside(_ lane: Int, left: Bool, _ width: Double) {
            if left && lane == 0 {
                leftOfFirst = max(leftOfFirst, width)
            } else if !left && lane == laneCount - 1 {
                rightOfLast = max(rightOfLast, width)
            } else {
                between = max(between, width)
            }
        }
        for (e, exchange) in plans.enumerated() {
            for (k, j) in exchange.journeys.enumerated() {
                let lanes = places[e][k].lanes
                // Label sides: a run of hops on one lane puts its labels away from the lane it came from,
                // else away from the lane it goes to; a journey on one lane labels to the right.
                var left = [Bool](repeating: false, count: lanes.count)
                var start = 0
                while start < lanes.count {
                    var end = start
                    while end + 1 < lanes.count && lanes[end + 1] == lanes[start] { end += 1 }
                    let l = lanes[start]
                    var side = false
                    if start > 0 {
                        side = lanes[start - 1] > l
                    } else if end + 1 < lanes.count {
                        side = lanes[end + 1] > l
                    } else if let e = places[e][k].endLane, e != l {
                        side = e > l
                    }
                    for i in start...end { left[i] = side }
                    start = end + 1
                }
                places[e][k].left = left
                for (i, h) in j.hops.enumerated() {
                    beside(lanes[i], left: left[i], labelWidth(h, shared: isShared(h.node)))
                    if i > 0, lanes[i] == lanes[i - 1], let lat = h.latency {
                        // A step down the lane: its time on the other side of the lane.
                        beside(lanes[i], left: !left[i], Double(lat.unicodeScalars.count) * cw + 12)
                    } else if let lat = h.latency {
                        between = max(between, Double(lat.unicodeScalars.count) * cw + 12)
                    }
                }
                if let end = j.end, let last = lanes.last {
                    let w = max(Double(min(end.unicodeScalars.count, Self.maxHeadingChars)) * cw,
                                Double(min(j.endDetail?.unicodeScalars.count ?? 0, Self.maxHeadingChars)) * scw) + 12
                    let to = places[e][k].endLane ?? last
                    beside(to, left: to == last ? (left.last ?? false) : to < last, w)
                }
            }
        }
        var names: [String] = []
        var maxName = 0.0
        for l in 0..<laneCount {
            let n = laneName(l)
            names.append(n)
            maxName = max(maxName, Double(min(n.unicodeScalars.count, Self.maxNameChars)) * cw + 24)
        }
        let gap = (max(240, between + 36, maxName + 24)).rounded()
        let leftPad = max(leftOfFirst + 24, maxName / 2 + 4, 60)
        let rightPad = max(rightOfLast + 24, maxName / 2 + 4, 60)
        let laneX = (0..<laneCount).map { m + leftPad + Double($0) * gap }
        var width = laneCount > 0 ? (laneX.last ?? 0) + rightPad + m : 480
        // The headings on one line each.
        for e in plans {
            width = max(width, Double(min(e.heading.unicodeScalars.count, Self.maxHeadingChars)) * cw + 2 * m + 24)
            width = max(width, Double(min(e.subheading.unicodeScalars.count, Self.maxHeadingChars)) * scw + 2 * m + 24)
            for j in e.journeys {
                width = max(width, Double(min(j.heading.unicodeScalars.count, Self.maxHeadingChars)) * cw + 2 * m + 8)
                for n in j.notes { width = max(width, Double(min(n.unicodeScalars.count, Self.maxHeadingChars)) * scw + 2 * m + 8) }
            }
        }
        let legend: [(String, String, Bool)] = [
            ("request", Self.color(.request), false), ("reply", Self.color(.reply), false),
            ("packet", Self.color(.single), false), ("drop", Self.red, false), ("lost / unfinished", Self.lostGrey, true),
        ]
        let legendWidth = legend.reduce(0.0) { $0 + 34 + Double($1.0.count) * Self.scw + 18 }
        width = max(width, legendWidth + 2 * m, Double(title.count) * 9.2 + 2 * m)
        width = width.rounded(.up)

        // The body, top to bottom; the height is known at its end.
        let body = OutputBuffer(capacity: 1 << 16)
        var y = m
        text(body, x: m, y: y + 14, size: 15, weight: true, fill: Self.ink) { Self.appendXML(self.title, into: $0) }
        y += 24
        var lx = m
        for (name, color, dashed) in legend {
            line(body, lx, y + 8, lx + 26, y + 8, color: color, width: 2, dashed: dashed)
            arrowHead(body, from: (lx, y + 8), to: (lx + 28, y + 8), color: color)
            text(body, x: lx + 34, y: y + 11.5, size: Self.small, fill: Self.grey) { Self.appendXML(name, into: $0) }
            lx += 34 + Double(name.count) * Self.scw + 18
        }
        y += 18
        text(body, x: m, y: y + 11, size: Self.small, fill: Self.grey) {
            $0.append("One lane per node, time flowing down; on each arrow, the time from the hop before.")
        }
        y += 24
        let lanesTop = y
        if laneCount > 0 { y += 26 + 16 }
        if plans.isEmpty {
            text(body, x: m, y: y + 14, size: Self.font, fill: Self.grey) { $0.append("No journey to draw.") }
            y += 30
        }
        for (e, exchange) in plans.enumerated() {
            // The exchange's header band.
            rect(body, x: m, y: y, w: width - 2 * m, h: 38, fill: "#eef2f7", stroke: "#c5cfd9")
            text(body, x: m + 10, y: y + 15, size: Self.font, weight: true, fill: Self.ink) {
                Self.appendXML(exchange.heading, max: Self.maxHeadingChars, into: $0)
            }
            text(body, x: m + 10, y: y + 30, size: Self.small, fill: Self.grey) {
                Self.appendXML(exchange.subheading, max: Self.maxHeadingChars, into: $0)
            }
            y += 38 + 12
            for (k, j) in exchange.journeys.enumerated() {
                let color = Self.color(j.role)
                let lanes = places[e][k].lanes
                let left = places[e][k].left
                // On white, over the lifelines.
                let hw = Double(min(j.heading.unicodeScalars.count, Self.maxHeadingChars)) * cw + 8
                rect(body, x: m, y: y - 2, w: hw, h: 17, fill: "#ffffff", stroke: nil, radius: 2)
                text(body, x: m + 4, y: y + 11, size: Self.font, weight: true, fill: color) {
                    Self.appendXML(j.heading, max: Self.maxHeadingChars, into: $0)
                }
                y += 26
                var dots: [Double] = []
                var dy = y
                for h in j.hops {
                    dots.append(dy)
                    dy += h.detail == nil ? 30 : 42
                }
                for (i, h) in j.hops.enumerated() {
                    let x = laneX[lanes[i]]
                    let yi = dots[i]
                    let c = h.isDrop ? Self.red : color
                    if i > 0 {
                        let px = laneX[lanes[i - 1]]
                        let py = dots[i - 1]
                        if lanes[i] == lanes[i - 1] {
                            line(body, x, py + 6, x, yi - 9, color: c, width: 1.6)
                            arrowHead(body, from: (x, py + 6), to: (x, yi - 5), color: c)
                            if let lat = h.latency {
                                let side = left[i] ? 1.0 : -1.0
                                text(body, x: x + side * 9, y: (py + yi) / 2 + 4, size: Self.font, weight: true, fill: c,
                                     anchor: left[i] ? "start" : "end") { Self.appendXML(lat, into: $0) }
                            }
                        } else {
                            let (sx, sy) = crossing(body, from: (px, py), labelLeft: left[i - 1], detail: j.hops[i - 1].detail != nil,
                                                    to: (x, yi), color: c, dashed: false)
                            if let lat = h.latency {
                                // Above the arrow's middle, clear of the line under either end of the text;
                                // below it when the arrow passes under the label of the hop before.
                                let mx = (sx + x) / 2
                                let my = (sy + yi) / 2
                                let w = Double(lat.unicodeScalars.count) * cw
                                let slope = abs(yi - sy) / max(abs(x - sx), 1)
                                let ty = sy == py ? my - slope * w / 2 - 5 : my + slope * w / 2 + 13
                                text(body, x: mx, y: ty, size: Self.font, weight: true, fill: c, anchor: "middle") {
                                    Self.appendXML(lat, into: $0)
                                }
                            }
                        }
                    }
                    // The dot: hollow for the first hop, a cross for a drop.
                    if h.isDrop {
                        body.append("<path d=\"M")
                        Self.point(x - 6, yi - 6, body)
                        body.append(" L")
                        Self.point(x + 6, yi + 6, body)
                        body.append(" M")
                        Self.point(x + 6, yi - 6, body)
                        body.append(" L")
                        Self.point(x - 6, yi + 6, body)
                        body.append("\" stroke=\"\(Self.red)\" stroke-width=\"3\" stroke-linecap=\"round\" fill=\"none\"/>\n")
                    } else {
                        circle(body, x, yi, r: 4, i == 0 ? "fill=\"#ffffff\" stroke=\"\(c)\" stroke-width=\"2\"" : "fill=\"\(c)\"")
                    }
                    let side = left[i] ? -1.0 : 1.0
                    let anchor = left[i] ? "end" : "start"
                    text(body, x: x + side * 11, y: yi + 4, size: Self.font, fill: Self.ink, anchor: anchor) { o in
                        if isShared(h.node) {
                            o.append("<tspan fill=\"\(Self.grey)\">")
                            Self.appendXML(b.nodeName(h.node) ?? "(no node)", max: Self.maxNameChars, into: o)
                            o.append(": </tspan>")
                        }
                        o.append("<tspan font-weight=\"bold\"")
                        if h.isDrop { o.append(" fill=\"\(Self.red)\"") }
                        o.append(">")
                        Self.appendXML(h.point, into: o)
                        o.append("</tspan>")
                        if !h.interface.isEmpty {
                            o.append("<tspan fill=\"\(Self.grey)\"> ")
                            Self.appendXML(h.interface, max: Self.maxNameChars, into: o)
                            o.append("</tspan>")
                        }
                    }
                    if let d = h.detail {
                        text(body, x: x + side * 11, y: yi + 17, size: Self.small, weight: h.isDrop, fill: h.isDrop ? Self.red : Self.grey,
                             anchor: anchor) { Self.appendXML(d, max: Self.maxHeadingChars, into: $0) }
                    }
                }
                y = dy - 4
                if let end = j.end, let lastLane = lanes.last, let ly = dots.last {
                    // Where it stopped, and where the next hop was expected.
                    let to = places[e][k].endLane ?? lastLane
                    let px = laneX[lastLane]
                    let x = laneX[to]
                    let ey = dy + 6
                    if to == lastLane {
                        line(body, x, ly + 6, x, ey - 9, color: Self.lostGrey, width: 1.6, dashed: true)
                        arrowHead(body, from: (x, ly + 6), to: (x, ey - 5), color: Self.lostGrey)
                    } else {
                        _ = crossing(body, from: (px, ly), labelLeft: left.last ?? false, detail: j.hops.last?.detail != nil,
                                     to: (x, ey), color: Self.lostGrey, dashed: true)
                    }
                    circle(body, x, ey, r: 5, "fill=\"#ffffff\" stroke=\"\(Self.lostGrey)\" stroke-width=\"1.6\" stroke-dasharray=\"2 2\"")
                    let endLeft = to == lastLane ? (left.last ?? false) : x < px
                    let side = endLeft ? -1.0 : 1.0
                    let anchor = endLeft ? "end" : "start"
                    text(body, x: x + side * 11, y: ey + 4, size: Self.font, weight: true, fill: Self.lostGrey, anchor: anchor) {
                        Self.appendXML(end, max: Self.maxHeadingChars, into: $0)
                    }
                    if let d = j.endDetail {
                        text(body, x: x + side * 11, y: ey + 17, size: Self.small, fill: Self.lostGrey, anchor: anchor) {
                            Self.appendXML(d, max: Self.maxHeadingChars, into: $0)
                        }
                    }
                    y = ey + 30
                }
                for n in j.notes {
                    text(body, x: m + 4, y: y + 11, size: Self.small, fill: Self.grey) {
                        Self.appendXML(n, max: Self.maxHeadingChars, into: $0)
                    }
                    y += 15
                }
                y += 12
            }
            y += 6
        }
        if notDrawn > 0 {
            text(body, x: m, y: y + 12, size: Self.small, fill: Self.grey) {
                $0.append("\(self.notDrawn) more exchange\(self.notDrawn == 1 ? " was" : "s were") not drawn (--draw).")
            }
            y += 20
        }
        // Lanes: lifelines behind everything, names at the top (and at the bottom of a long drawing).
        let lanesOut = OutputBuffer(capacity: 4096)
        let bottomNames = plans.count > 1
        let lifeEnd = y + (bottomNames ? 4 : 0)
        for l in 0..<laneCount {
            line(lanesOut, laneX[l], lanesTop + 26, laneX[l], lifeEnd, color: "#b0bec5", width: 1, dashed: true)
        }
        if bottomNames { y += 4 }
        for top in bottomNames ? [lanesTop, y] : [lanesTop] {
            for l in 0..<laneCount {
                let name = names[l]
                let w = Double(min(name.unicodeScalars.count, Self.maxNameChars)) * cw + 20
                rect(lanesOut, x: laneX[l] - w / 2, y: top, w: w, h: 26, fill: "#37474f", stroke: nil, radius: 4)
                text(lanesOut, x: laneX[l], y: top + 17, size: Self.font, weight: true, fill: "#ffffff", anchor: "middle") {
                    Self.appendXML(name, max: Self.maxNameChars, into: $0)
                }
            }
        }
        if bottomNames && laneCount > 0 { y += 26 }
        let height = (y + m).rounded(.up)

        out.append("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"")
        Self.num(width, out)
        out.append("\" height=\"")
        Self.num(height, out)
        out.append("\" viewBox=\"0 0 ")
        Self.num(width, out)
        out.append(" ")
        Self.num(height, out)
        out.append("\" font-family=\"monospace\" font-size=\"12\">\n<title>")
        Self.appendXML(title, into: out)
        out.append("</title>\n<rect x=\"0\" y=\"0\" width=\"")
        Self.num(width, out)
        out.append("\" height=\"")
        Self.num(height, out)
        out.append("\" fill=\"#ffffff\"/>\n")
        out.append(lanesOut)
        out.append(body)
        out.append("</svg>\n")
    }

    /// An arrow from a dot on one lane to a dot on another. When it leaves towards the side where the
    /// first dot's label is (a journey passing through a node), it first steps down the lane, below
    /// the label. Returns where its slanted part starts.
    private func crossing(
        _ o: OutputBuffer, from: (Double, Double), labelLeft: Bool, detail: Bool, to: (Double, Double), color: String,
        dashed: Bool
    ) -> (Double, Double) {
        let dir = to.0 > from.0 ? 1.0 : -1.0
        var start = (from.0 + dir * 5, from.1)
        if labelLeft == (dir < 0) {
            let down = from.1 + (detail ? 22 : 10)
            line(o, from.0, from.1 + 6, from.0, down, color: color, width: 1.6, dashed: dashed)
            start = (from.0, down)
        }
        line(o, start.0, start.1, to.0 - dir * 9, to.1, color: color, width: 1.6, dashed: dashed)
        arrowHead(o, from: start, to: (to.0 - dir * 5, to.1), color: color)
        return start
    }

    private func labelWidth(_ h: HopPlan, shared: Bool) -> Double {
        var chars = h.point.unicodeScalars.count
        if !h.interface.isEmpty { chars += 1 + min(h.interface.unicodeScalars.count, Self.maxNameChars) }
        if shared { chars += Self.maxNameChars + 2 }
        let detail = Double(min(h.detail?.unicodeScalars.count ?? 0, Self.maxHeadingChars)) * Self.scw
        return max(Double(chars) * Self.cw, detail) + 12
    }

    // MARK: SVG pieces

    private func text(
        _ o: OutputBuffer, x: Double, y: Double, size: Double, weight: Bool = false, fill: String, anchor: String = "start",
        _ content: (OutputBuffer) -> Void
    ) {
        o.append("<text x=\"")
        Self.num(x, o)
        o.append("\" y=\"")
        Self.num(y, o)
        o.append("\"")
        if size != Self.font {
            o.append(" font-size=\"")
            Self.num(size, o)
            o.append("\"")
        }
        if weight { o.append(" font-weight=\"bold\"") }
        o.append(" fill=\"")
        o.append(fill)
        o.append("\"")
        if anchor != "start" {
            o.append(" text-anchor=\"")
            o.append(anchor)
            o.append("\"")
        }
        o.append(">")
        content(o)
        o.append("</text>\n")
    }

    private func line(_ o: OutputBuffer, _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: String, width: Double, dashed: Bool = false) {
        o.append("<line x1=\"")
        Self.num(x1, o)
        o.append("\" y1=\"")
        Self.num(y1, o)
        o.append("\" x2=\"")
        Self.num(x2, o)
        o.append("\" y2=\"")
        Self.num(y2, o)
        o.append("\" stroke=\"")
        o.append(color)
        o.append("\" stroke-width=\"")
        Self.num(width, o)
        o.append(dashed ? "\" stroke-dasharray=\"5 4\"/>\n" : "\"/>\n")
    }

    /// A filled arrowhead whose tip is at `to`, pointing from `from`.
    private func arrowHead(_ o: OutputBuffer, from: (Double, Double), to: (Double, Double), color: String) {
        let dx = to.0 - from.0
        let dy = to.1 - from.1
        let len = (dx * dx + dy * dy).squareRoot()
        guard len > 0 else { return }
        let ux = dx / len
        let uy = dy / len
        let back = (to.0 - ux * 8, to.1 - uy * 8)
        o.append("<polygon points=\"")
        Self.point(to.0, to.1, o)
        o.append(" ")
        Self.point(back.0 - uy * 4, back.1 + ux * 4, o)
        o.append(" ")
        Self.point(back.0 + uy * 4, back.1 - ux * 4, o)
        o.append("\" fill=\"")
        o.append(color)
        o.append("\"/>\n")
    }

    private func rect(
        _ o: OutputBuffer, x: Double, y: Double, w: Double, h: Double, fill: String, stroke: String?, radius: Double = 4
    ) {
        o.append("<rect x=\"")
        Self.num(x, o)
        o.append("\" y=\"")
        Self.num(y, o)
        o.append("\" width=\"")
        Self.num(w, o)
        o.append("\" height=\"")
        Self.num(h, o)
        o.append("\" rx=\"")
        Self.num(radius, o)
        o.append("\" fill=\"")
        o.append(fill)
        if let stroke {
            o.append("\" stroke=\"")
            o.append(stroke)
        }
        o.append("\"/>\n")
    }

    private func circle(_ o: OutputBuffer, _ x: Double, _ y: Double, r: Double, _ paint: String) {
        o.append("<circle cx=\"")
        Self.num(x, o)
        o.append("\" cy=\"")
        Self.num(y, o)
        o.append("\" r=\"")
        Self.num(r, o)
        o.append("\" ")
        o.append(paint)
        o.append("/>\n")
    }

    /// `x,y`, as polygon points and path data take them.
    static func point(_ x: Double, _ y: Double, _ o: OutputBuffer) {
        num(x, o)
        o.append(",")
        num(y, o)
    }

    /// A coordinate with at most one decimal.
    static func num(_ v: Double, _ o: OutputBuffer) {
        let t = v.isFinite ? Int((v * 10).rounded()) : 0
        if t < 0 { o.append("-") }
        let a = t.magnitude
        o.unsignedDecimal(UInt64(a / 10))
        if a % 10 != 0 {
            o.append(".")
            o.unsignedDecimal(UInt64(a % 10))
        }
    }

    /// Appends `s` as XML character data (or an attribute's value): `& < > " '` as entities; C0, DEL
    /// and C1 controls, bidi and invisible format controls, line and paragraph separators, tag
    /// characters and non-characters (which XML does not allow, or which reorder or hide text) as `?`.
    /// At most `max` characters: a longer text is cut, ending in `…`.
    public static func appendXML(_ s: String, max: Int = Int.max, into out: OutputBuffer) {
        let cut = max < Int.max && s.unicodeScalars.prefix(max &+ 1).count > max
        var n = 0
        for scalar in s.unicodeScalars {
            if cut && n >= max - 1 {
                out.append("…")
                return
            }
            n += 1
            let v = scalar.value
            switch v {
            case 0x26: out.append("&amp;")
            case 0x3c: out.append("&lt;")
            case 0x3e: out.append("&gt;")
            case 0x22: out.append("&quot;")
            case 0x27: out.append("&#39;")
            case 0..<0x20, 0x7f...0x9f, 0x2028, 0x2029, 0xe0000...0xe007f, 0xfdd0...0xfdef:
                out.append(byte: UInt8(ascii: "?"))
            default:
                if OutputBuffer.isBidiControl(v) || v & 0xfffe == 0xfffe {
                    out.append(byte: UInt8(ascii: "?"))
                } else if v < 0x80 {
                    out.append(byte: UInt8(v))
                } else {
                    for b in String(scalar).utf8 { out.append(byte: b) }
                }
            }
        }
    }
}

extension JourneyDrawing.JourneyPlan {
    init(_ j: Journey, _ b: JourneyBuilder) {
        role = j.role
        outcome = j.outcome
        var words = "#\(j.id) "
        switch j.role {
        case .request: words += "request"
        case .reply: words += "reply" + (j.pairedWith.map { " to #\($0)" } ?? "")
        case .single: words += j.key.isEchoRequest ? "request (no reply)" : "packet"
        }
        let o = OutputBuffer(capacity: 256)
        JourneyDescription.duration(b.latency(j), into: o)
        words += ": \(j.outcome.name), \(j.hops.count) hop\(j.hops.count == 1 ? "" : "s") in \(o.string)"
        if let v = j.vni { words += ", VNI \(v)" }
        heading = words
        notes = []
        end = nil
        endDetail = nil
        endNode = nil
        hops = []
        let drawn = min(j.hops.count, JourneyDrawing.maxHopsDrawn)
        for i in 0..<drawn {
            let h = j.hops[i]
            o.removeAll()
            JourneyDescription.interface(h, b, into: o)
            let interface = h.ifindex == 0 ? "" : o.string
            o.removeAll()
            JourneyDescription.details(h, b.release, into: o)
            var detail: [String] = []
            if o.count > 0 { detail.append(o.string.replacing(" -> ", with: " → ")) }
            if let c = b.correction(j, i) {
                o.removeAll()
                JourneyDescription.duration(c, into: o)
                detail.append("clock offset \(o.string) taken off")
            }
            if i == 0, let pod = b.pods.pod(at: j.key.source) { detail.insert("from \(pod.name)", at: 0) }
            if i == j.hops.count - 1, j.outcome == .delivered, h.point == .toEndpoint, let pod = b.pods.pod(at: j.key.destination) {
                detail.append("to \(pod.name)")
            }
            hops.append(
                JourneyDrawing.HopPlan(
                    node: h.node, point: JourneyDescription.pointString(h), interface: interface,
                    latency: i == 0 ? nil : JourneyDescription.durationString(b.delta(j, i), plus: true),
                    detail: detail.isEmpty ? nil : detail.joined(separator: " · "), isDrop: h.kind == .drop))
        }
        if j.hops.count > drawn { notes.append("\(j.hops.count - drawn) more hops not drawn") }
        if j.extraHops > 0 { notes.append("\(j.extraHops) more hops not kept") }
        let missing = j.missing.map { m -> String in
            let point = CiliumNames.observationPointAny(m.point.rawValue) ?? "unknown"
            let node = m.node == JourneyBuilder.unknownNode ? "the far node" : (b.nodeName(m.node) ?? "(no node)")
            return "\(point) on \(node)"
        }
        let lost = j.lostDuring == 0 ? "no sample was lost" : "\(j.lostDuring) sample\(j.lostDuring == 1 ? "" : "s") lost meanwhile"
        if j.outcome == .lost || j.outcome == .unfinished, let last = j.hops.last {
            o.removeAll()
            JourneyDescription.place(last, b, into: o)
            end = "\(j.outcome.name) after \(o.string) (\(j.closeReason.name))"
            endDetail = (missing.isEmpty ? "" : "never seen: " + missing.joined(separator: ", ") + " · ") + lost
            endNode = j.missing.last(where: { $0.node != JourneyBuilder.unknownNode && $0.node != last.node })?.node
        } else if !missing.isEmpty {
            notes.append("missing: " + missing.joined(separator: ", ") + " (" + lost + ")")
        }
    }
}
