import Foundation
import Testing

// `vxmon journey --summary -o json` on a lab recording whose worker clock was shifted on purpose
// (tools/shift_node_times.py: a known offset, and drift, added to every time of worker's records).
// The oracle is the injected shift and the unshifted recording's own record times: the clock_offsets
// entry must hold the injected offset at its time, say the hops were corrected, and the corrected
// cross-node deltas must be those of the unshifted recording within what the estimate vouches for.
// On the unshifted recording (one kernel clock for all nodes) nothing is corrected and every delta
// is the plain difference of the events' times.

private enum ClockSample {
    static let file = CLIFixtures.packageRoot + "/Tests/Fixtures/journey/cross_node_ping_100.vxrec"
    static let tool = CLIFixtures.packageRoot + "/tools/shift_node_times.py"
    static let pings = 100

    /// The time of every sample record (kind 1), straight from spec/vxrec.md.
    static func sampleTimes(_ b: [UInt8]) -> [UInt64] {
        func le(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }
        guard b.count >= 16 else { return [] }
        var o = Int(le(10, 2))
        var out: [UInt64] = []
        while o + 24 <= b.count {
            let length = Int(le(o + 16, 4))
            if le(o, 2) == 1 { out.append(le(o + 8, 8)) }
            o += 24 + length
            o += (8 - o % 8) % 8
        }
        return out
    }
}

private struct Line: Decodable {
    var journey: Journey?
    var journey_summary: Summary?
}

private struct Journey: Decodable {
    var id: UInt64
    var role: String
    var icmp_seq: Int?
    var outcome: String
    var complete: Bool
    var latency_ns: Int64
    var hops: [Hop]
}

private struct Hop: Decodable {
    var node: String?
    var point: String?
    var time_ns: UInt64
    var delta_ns: Int64
    var clock_offset_ns: Int64?
}

private struct Summary: Decodable {
    var pairs: Int
    var clock_offsets: [ClockOffset]
}

private struct ClockOffset: Decodable {
    var node_a: String?
    var node_b: String?
    var offset_ns: Int64
    var bound_ns: Int64
    var time_ns: UInt64
    var drift_ppb: Int64
    var drift_bound_ppb: Int64
    var pairs: Int
    var consistent: Bool
    var corrected: Bool
}

/// What `vxmon journey FILE -o json --summary` printed.
private struct JourneyRun {
    var journeys: [Journey] = []
    var summary: Summary?

    init(_ file: String) throws {
        let r = try run(Binary.vxmon, ["journey", file, "-o", "json", "--summary"])
        #expect(r.status == 0 && r.stderr.isEmpty, "vxmon journey \(file): \(r.status) \(r.stderr)")
        let decoder = JSONDecoder()
        for line in r.stdout.split(separator: "\n") {
            let l = try decoder.decode(Line.self, from: Data(line.utf8))
            if let j = l.journey { journeys.append(j) }
            if let s = l.journey_summary { summary = s }
        }
    }

    /// The journeys by (role, ICMP sequence).
    var byExchange: [String: Journey] {
        Dictionary(journeys.map { ("\($0.role) \($0.icmp_seq ?? -1)", $0) }, uniquingKeysWith: { a, _ in a })
    }
}

/// worker's clock = the shared clock + offset + drift·(t − t0), as tools/shift_node_times.py makes it.
private struct Shift {
    var offsetNS: Int64
    var driftPPM: Double
    var t0: UInt64

    var rate: Double { driftPPM * 1e-6 }
    /// θ = clock_worker − clock_worker2 at shared-clock time `t`.
    func theta(_ t: UInt64) -> Double { Double(offsetNS) + rate * Double(Int64(bitPattern: t &- t0)) }
    /// The shared-clock time at which worker's clock reads `t`.
    func unshifted(_ t: UInt64) -> UInt64 {
        let since = (Double(Int64(bitPattern: t &- t0)) - Double(offsetNS)) / (1 + rate)
        return since >= 0 ? t0 &+ UInt64(since.rounded()) : t0 &- UInt64((-since).rounded())
    }
}

@Suite("vxmon journey: clock offsets of nodes whose clocks differ (a known shift injected)")
struct JourneyClockTests {
    @Test("the unshifted lab recording: one clock, nothing corrected, every delta the plain time difference")
    func sharedClock() throws {
        let recording = CLIFixtures.bytes(ClockSample.file)
        try #require(!recording.isEmpty, "no \(ClockSample.file)")
        let original = try JourneyRun(ClockSample.file)
        #expect(original.journeys.count == 2 * ClockSample.pings)
        // The hops are the recording's events, at their own times (the file's records, read here).
        let times = ClockSample.sampleTimes(recording)
        #expect(times.count == 10 * ClockSample.pings)
        #expect(original.journeys.flatMap { $0.hops.map(\.time_ns) }.sorted() == times.sorted())
        let summary = try #require(original.summary)
        #expect(summary.pairs == ClockSample.pings)
        #expect(summary.clock_offsets.count == 1)
        for e in summary.clock_offsets {
            #expect(Set([e.node_a, e.node_b]) == Set(["worker", "worker2"]))
            #expect(!e.corrected, "\(e)")
            #expect(abs(e.offset_ns) <= e.bound_ns, "\(e)")
            #expect(e.consistent && e.pairs == ClockSample.pings)
            // The one clock drifts not at all from itself.
            #expect(abs(e.drift_ppb) <= e.drift_bound_ppb, "\(e)")
        }
        for j in original.journeys {
            #expect(j.complete && j.outcome == "delivered" && j.hops.count == 5, "journey \(j.id)")
            for (i, h) in j.hops.enumerated() {
                #expect(h.clock_offset_ns == nil, "journey \(j.id) hop \(i)")
                let plain = i == 0 ? 0 : Int64(bitPattern: h.time_ns &- j.hops[i - 1].time_ns)
                #expect(h.delta_ns == plain, "journey \(j.id) hop \(i)")
            }
            #expect(j.latency_ns == Int64(bitPattern: j.hops.last!.time_ns &- j.hops[0].time_ns))
        }
    }

    @Test("worker's clock 5 µs ahead, less than the pairs can tell: found within the bound, nothing corrected")
    func shiftedTooLittle() throws {
        let python = try #require(which("python3"), "python3 runs tools/shift_node_times.py")
        let recording = CLIFixtures.bytes(ClockSample.file)
        let t0 = try #require(ClockSample.sampleTimes(recording).first, "no \(ClockSample.file)")
        let shift = Shift(offsetNS: 5_000, driftPPM: 0, t0: t0)
        let out = NSTemporaryDirectory() + "/vxmon-clock-\(UUID().uuidString).vxrec"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tool = try run(python, [ClockSample.tool, ClockSample.file, out, "--node", "worker", "--offset-ns", "5000"])
        try #require(tool.status == 0, "shift_node_times.py: \(tool.stderr)")
        let moved = try JourneyRun(out)
        let e = try #require(moved.summary?.clock_offsets.first)
        let truth = e.node_a == "worker2" ? shift.theta(e.time_ns) : -shift.theta(e.time_ns)
        #expect(abs(Double(e.offset_ns) - truth) <= Double(e.bound_ns) + 1, "\(e): injected \(truth)")
        // The bound (tens of µs on the lab: the least one-way delays) does not exclude 0.
        #expect(!e.corrected && abs(e.offset_ns) <= e.bound_ns, "\(e)")
        // The hops' times are the shifted file's, and every delta their plain difference.
        let times = ClockSample.sampleTimes(CLIFixtures.bytes(out))
        #expect(moved.journeys.flatMap { $0.hops.map(\.time_ns) }.sorted() == times.sorted())
        for j in moved.journeys {
            for (i, h) in j.hops.enumerated() {
                #expect(h.clock_offset_ns == nil, "journey \(j.id) hop \(i)")
                let plain = i == 0 ? 0 : Int64(bitPattern: h.time_ns &- j.hops[i - 1].time_ns)
                #expect(h.delta_ns == plain, "journey \(j.id) hop \(i)")
            }
        }
    }

    /// A few ms either way, with and without drift; and seconds apart with a drift near NTP's 500 ppm
    /// limit, as clocks nobody synchronises are.
    @Test(
        "worker's clock shifted: the offset is found within its bound and the hops corrected",
        arguments: [(5_000_000, 0), (-3_200_000, 40), (2_000_000_000, 300), (-700_000_000, -450)] as [(Int64, Double)])
    func shifted(offsetNS: Int64, driftPPM: Double) throws {
        let python = try #require(which("python3"), "python3 runs tools/shift_node_times.py")
        let recording = CLIFixtures.bytes(ClockSample.file)
        try #require(!recording.isEmpty, "no \(ClockSample.file)")
        let t0 = try #require(ClockSample.sampleTimes(recording).first)
        let shift = Shift(offsetNS: offsetNS, driftPPM: driftPPM, t0: t0)
        let out = NSTemporaryDirectory() + "/vxmon-clock-\(UUID().uuidString).vxrec"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tool = try run(
            python,
            [
                ClockSample.tool, ClockSample.file, out, "--node", "worker", "--offset-ns", String(offsetNS),
                "--drift-ppm", String(driftPPM), "--t0-ns", String(shift.t0),
            ])
        try #require(tool.status == 0, "shift_node_times.py: \(tool.stderr)")

        let original = try JourneyRun(ClockSample.file)
        let moved = try JourneyRun(out)
        let summary = try #require(moved.summary)
        try #require(summary.clock_offsets.count == 1, "\(summary.clock_offsets)")
        let e = summary.clock_offsets[0]
        #expect(e.consistent && e.corrected && e.pairs == ClockSample.pings, "\(e)")
        // offset_ns = clock of node_b − clock of node_a at time_ns, on node_a's clock.
        let truth: Double
        let truthDrift: Double
        switch (e.node_a, e.node_b) {
        case ("worker2", "worker"):
            truth = shift.theta(e.time_ns)
            truthDrift = shift.rate
        case ("worker", "worker2"):
            truth = -shift.theta(shift.unshifted(e.time_ns))
            truthDrift = -shift.rate / (1 + shift.rate)
        default:
            Issue.record("clock_offsets names \(String(describing: e.node_a)), \(String(describing: e.node_b))")
            return
        }
        #expect(abs(Double(e.offset_ns) - truth) <= Double(e.bound_ns) + 1, "\(e): injected \(truth)")
        let driftError = abs(Double(e.drift_ppb) - truthDrift * 1e9)
        #expect(driftError <= Double(e.drift_bound_ppb) + 1, "\(e): injected \(truthDrift)")

        // The same journeys, the same hops in the same order, and the same deltas: exactly the shifted
        // difference on one node (drift over the delta, whole ns), and across nodes within what the
        // estimate vouches for at the hop's time (the bound at time_ns, and the spread of the drift
        // interval times the distance from time_ns: every line the pairs allow, the true one too, has
        // its slope inside the drift interval).
        #expect(moved.journeys.count == original.journeys.count)
        let before = original.byExchange
        var crossings = 0
        for j in moved.journeys {
            let key = "\(j.role) \(j.icmp_seq ?? -1)"
            guard let o = before[key] else {
                Issue.record("journey \(key) not in the unshifted run")
                continue
            }
            #expect(j.complete && j.outcome == "delivered", "journey \(j.id) (\(key)): \(j.outcome)")
            let places = j.hops.map { "\($0.node ?? "-") \($0.point ?? "-")" }
            let placesBefore = o.hops.map { "\($0.node ?? "-") \($0.point ?? "-")" }
            guard places == placesBefore else {
                Issue.record("journey \(j.id) (\(key)): hops \(places), unshifted \(placesBefore)")
                continue
            }
            for i in j.hops.indices.dropFirst() {
                let h = j.hops[i]
                let d = Double(h.delta_ns - o.hops[i].delta_ns)
                let drift = abs(shift.rate) * Double(abs(o.hops[i].delta_ns))
                if h.node == j.hops[i - 1].node {
                    #expect(h.clock_offset_ns == nil)
                    #expect(
                        abs(d) <= (h.node == "worker" ? drift + 1 : 0),
                        "journey \(j.id) hop \(i): \(h.delta_ns) vs \(o.hops[i].delta_ns)")
                } else {
                    crossings += 1
                    #expect(h.clock_offset_ns != nil, "journey \(j.id) hop \(i): not corrected")
                    // How far from time_ns, on the shared clock of the unshifted recording.
                    let from = j.hops[i - 1]
                    let sent = from.node == "worker" ? shift.unshifted(from.time_ns) : from.time_ns
                    let given = e.node_a == "worker" ? shift.unshifted(e.time_ns) : e.time_ns
                    let away = abs(Double(Int64(bitPattern: sent &- given)))
                    let allowed = Double(e.bound_ns) + 2 * Double(e.drift_bound_ppb) * 1e-9 * away + drift + 2
                    let hop = "journey \(j.id) (\(key)) hop \(i) \(places[i - 1]) -> \(places[i])"
                    #expect(
                        abs(d) <= allowed,
                        "\(hop): delta \(h.delta_ns), unshifted \(o.hops[i].delta_ns), allowed ±\(allowed)")
                }
            }
        }
        #expect(crossings == 2 * ClockSample.pings)
    }
}
