import Foundation
import Testing
import VxmonCore
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// `vxmon journey --svg FILE --html FILE` (issue 18, "a picture"). The oracles: Python's xml.etree parses
// the SVG, html.parser the page, and Tests/scripts/check_journey_svg.py checks the drawing against the
// journeys of the same run as `-o json` gives them (a lane label per node, each hop's label beside its
// node's lane and below the hop before, each hop's delta_ns as a latency label formatted by its own Go
// duration formatter, drops in red, lost journeys grey and dashed); Debian's chromium renders the SVG and
// the HTML headless, and the script reads its screenshots (zlib, PNG filters): not blank, the lane boxes
// where the SVG puts them, red pixels at the drop.

@Suite("vxmon journey --svg/--html")
struct JourneyDrawingTests {
    static let script = CLIFixtures.packageRoot + "/Tests/scripts/check_journey_svg.py"
    static let samples = CLIFixtures.packageRoot + "/samples"
    static let chromium = which("chromium") ?? which("chromium-browser")
    static let requireAll = ProcessInfo.processInfo.environment["VXMON_REQUIRE_PRIVILEGED"] == "1"

    struct Drawing {
        var svg: String
        var html: String
        var json: String
        var result: ProcessResult
    }

    /// Runs `vxmon journey FILE -o json --svg --html` with the files in `dir`.
    func draw(_ recording: String, in dir: String, _ extra: [String] = []) throws -> Drawing {
        let name = URL(fileURLWithPath: recording).deletingPathExtension().lastPathComponent
        let (svg, html, json) = ("\(dir)/\(name).svg", "\(dir)/\(name).html", "\(dir)/\(name).json")
        let r = try run(Binary.vxmon, ["journey", recording, "-o", "json", "--svg", svg, "--html", html] + extra, stdoutFile: json)
        #expect(r.status == 0, "vxmon journey \(name): \(r.stderr)")
        return Drawing(svg: svg, html: html, json: json, result: r)
    }

    /// Runs the checker; its output is in the failure message.
    func check(_ arguments: [String], _ comment: String) throws {
        let python = try #require(which("python3"), "python3 runs the drawing's checker")
        let r = try run(python, [Self.script] + arguments)
        #expect(r.status == 0, "\(comment): check_journey_svg.py failed:\n\(r.stdout)\(r.stderr)")
    }

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "/vxmon-drawing-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(
        "each sample's drawing: well-formed SVG with a viewBox, a lane per node, every hop labelled beside its lane with its JSON delta, drops red; the HTML holds the same SVG and no script",
        arguments: ["cross_node_ping", "policy_denied", "tcp_udp", "no_tunnel", "same_node_ping"])
    func sample(_ name: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try draw("\(Self.samples)/\(name).vxrec", in: dir)
        var expect: [String] = []
        switch name {
        case "cross_node_ping": expect = ["worker2-pod1 → worker-pod1 · request VNI 19773, reply VNI 5487"]
        case "policy_denied": expect = ["Policy denied (133)"]
        case "no_tunnel": expect = ["No tunnel/encapsulation endpoint"]
        default: break
        }
        try check(["--svg", d.svg, "--json", d.json, "--html", d.html] + expect.flatMap { ["--expect-text", $0] }, name)
    }

    @Test("--draw 1 draws the first exchange only, and says on stderr how many were not drawn")
    func drawLimit() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try draw("\(Self.samples)/cross_node_ping.vxrec", in: dir, ["--draw", "1"])
        #expect(d.result.stderr.contains("drew the first 1 exchanges; 1 more were not drawn (--draw)"), "\(d.result.stderr)")
        try check(["--svg", d.svg, "--json", d.json, "--html", d.html, "--exchanges", "1"], "--draw 1")
    }

    @Test(
        "chromium renders the SVG and the HTML: not blank, the lane boxes where the SVG puts them, red pixels at the drop",
        .enabled(
            if: JourneyDrawingTests.chromium != nil || JourneyDrawingTests.requireAll,
            "chromium is not installed (scripts/setup.sh test installs it); VXMON_REQUIRE_PRIVILEGED=1 makes this a failure"))
    func chromiumRenders() throws {
        let chromium = try #require(Self.chromium, "chromium renders the drawing here; scripts/setup.sh test installs it")
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One after the other: the machine's cores are shared.
        for name in ["cross_node_ping", "policy_denied"] {
            let d = try draw("\(Self.samples)/\(name).vxrec", in: dir)
            var pngs: [String] = []
            for (file, offset) in [(d.svg, 0), (d.html, 16)] {
                let png = file + ".png"
                try screenshot(chromium, file, png, profile: dir + "/profile-\(name)")
                // The page's body has a 16 px margin; the SVG document none.
                pngs += ["--png", "\(png):\(offset):\(offset)"]
            }
            try check(["--svg", d.svg, "--json", d.json, "--html", d.html] + pngs, "\(name) in chromium")
        }
    }

    /// `chromium --headless --screenshot`, under timeout(1) (which kills chromium's whole process group
    /// when it runs out), with a throwaway profile.
    func screenshot(_ chromium: String, _ file: String, _ png: String, profile: String) throws {
        let timeout = try #require(which("timeout"), "coreutils' timeout bounds chromium")
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let r = try run(
            timeout,
            [
                "-k", "10", "120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--no-first-run", "--user-data-dir=\(profile)", "--screenshot=\(png)",
                "--window-size=1200,900", "file://\(file)",
            ])
        #expect(r.status == 0, "chromium on \(file): status \(r.status) (124: timed out)\n\(r.stderr.suffix(2000))")
        #expect(FileManager.default.fileExists(atPath: png), "chromium wrote no \(png)")
    }

    static let hostileNode = "w2<script>x(\"a&b\")</script>\u{202E}\u{7}'&amp;]]>"
    static let hostileInterface = "lxc<b>\"&\u{202E}\u{1B}[31m"
    static let hostilePod = "<img src=x onerror=alert(1)>\u{2066}"

    @Test("hostile node, interface and pod names (<script>, quotes, &, ]]>, bidi and control characters) stay text; a lost journey is grey and dashed")
    func hostile() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/hostile.vxrec"
        try Data(vxrec(hostileRecording())).write(to: URL(fileURLWithPath: path))
        let d = try draw(path, in: dir)
        let svg = try String(contentsOfFile: d.svg, encoding: .utf8)
        let html = try String(contentsOfFile: d.html, encoding: .utf8)
        for text in [svg, html] {
            #expect(!text.lowercased().contains("<script"))
            #expect(!text.lowercased().contains("<img"))
            #expect(!text.contains("\u{202E}") && !text.contains("\u{2066}") && !text.contains("\u{1B}") && !text.contains("\u{7}"))
        }
        let json = try String(contentsOfFile: d.json, encoding: .utf8)
        #expect(json.contains("\"outcome\":\"lost\""), "the recording cut leaves a lost journey")
        // The node name, as the drawing shows it: each control and bidi character a `?`.
        try check(
            [
                "--svg", d.svg, "--json", d.json, "--html", d.html,
                "--expect-text", "w2<script>x(\"a&b\")</script>??'&amp;]]>",
                "--expect-text", "from <img src=x onerror=alert(1)>?",
                "--expect-text", "lost after w2<script>",
            ], "hostile")
    }

    /// samples/cross_node_ping.vxrec with worker2, its pod and its lxc renamed to hostile names, and the
    /// samples of the first exchange on worker replaced by a lost record (the request is lost).
    func hostileRecording() -> [Record] {
        let bytes = CLIFixtures.bytes("\(Self.samples)/cross_node_ping.vxrec")
        var out: [Record] = []
        var seenSample = false
        var cutting = false
        var cut = false
        for var r in timedRecords(bytes) {
            if r.kind == 4 {
                var text = String(decoding: r.body, as: UTF8.self)
                if cutting { cutting = false }
                if text == "node=worker2" { text = "node=" + Self.hostileNode }
                if text.hasPrefix("pod=") {
                    text = text.replacing("name=worker2-pod1,", with: "name=\(Self.hostilePod),")
                    text = text.replacing("node=worker2", with: "node=" + Self.hostileNode)
                }
                if text == "node=worker" && seenSample && !cut {
                    cutting = true
                    cut = true
                    out.append(r)
                    out.append(Record(kind: 2, cpu: r.cpu, time: r.time, body: leBytes(UInt64(3))))
                    continue
                }
                r.body = Array(text.utf8)
            } else if r.kind == 3, r.body.count > 4, String(decoding: r.body[4...], as: UTF8.self) == "lxc839726d5" {
                r.body = Array(r.body[..<4]) + Array(Self.hostileInterface.utf8)
            } else if r.kind == 1 {
                seenSample = true
                if cutting { continue }
            }
            out.append(r)
        }
        return out
    }

    /// The records of a `.vxrec` file with their times, straight from the spec (kind, cpu, time_ns,
    /// length; bodies padded to 8 bytes).
    func timedRecords(_ b: [UInt8]) -> [Record] {
        func le(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }
        guard b.count >= 16 else { return [] }
        var o = Int(le(10, 2))
        var out: [Record] = []
        while o + 24 <= b.count {
            let len = Int(le(o + 16, 4))
            guard o + 24 + len <= b.count else { break }
            out.append(
                Record(kind: UInt16(le(o, 2)), cpu: UInt32(le(o + 4, 4)), time: le(o + 8, 8), body: Array(b[(o + 24)..<(o + 24 + len)])))
            o += 24 + ((len + 7) & ~7)
        }
        return out
    }

    @Test("bounded: a journey of 40 hops on 40 nodes draws 24 hops on 12 lanes, the last shared, and says so; a long name is cut")
    func bounded() throws {
        let names = InterfaceNames()
        let builder = JourneyBuilder(pods: PodDirectory(), names: names)
        let key = PacketKey(
            source: .v4(IPv4Address(rawValue: 0x0a00_020a)), destination: .v4(IPv4Address(rawValue: 0x0a00_010a)), ipProtocol: 17,
            sourcePort: 40000, destinationPort: 53)
        var j = Journey(id: 1, key: key)
        let points: [ObservationPoint] = [.fromEndpoint, .toOverlay, .fromOverlay, .toStack]
        for i in 0..<40 {
            j.hops.append(
                JourneyHop(kind: .trace, node: UInt16(1 + i), point: points[i % 4], ifindex: 0, time: 1_000_000 + UInt64(i) * 1500))
        }
        j.outcome = .unfinished
        j.closeReason = .endOfRun
        let drawing = JourneyDrawing(limit: 1)
        [j].withUnsafeBufferPointer { drawing.exchange($0, builder: builder) }
        [j].withUnsafeBufferPointer { drawing.exchange($0, builder: builder) }
        #expect(drawing.exchanges.count == 1)
        #expect(drawing.notDrawn == 1)
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let svg = drawing.svg(builder)
        try Data(svg.utf8).write(to: URL(fileURLWithPath: dir + "/bounded.svg"))
        try check(
            [
                "--svg", dir + "/bounded.svg", "--max-lanes", "12", "--max-hop-labels", "24", "--expect-text", "16 more hops not drawn",
                "--expect-text", "13 other nodes", "--expect-text", "1 more exchange was not drawn",
            ], "bounded")
        // A name of 10,000 characters is cut to a few dozen.
        let out = OutputBuffer(capacity: 256)
        JourneyDrawing.appendXML(String(repeating: "<n>", count: 10_000), max: 40, into: out)
        #expect(out.string == String(repeating: "&lt;n&gt;", count: 13) + "…")
    }
}
