import Testing

@testable import VxmonCore

// ClockOffsets against synthetic request/reply pairs whose truth is known: node B's clock reads
// clock_A + θ0 + r·(t − t0) (t on A's clock, the true time here), every one-way delay and every
// turnaround is random and non-negative (a seeded generator: the same pairs on every run). The oracle
// is the injected θ0 and r, never the estimator: the estimate's interval must hold the true offset,
// its drift interval the true drift.

/// SplitMix64: a small seeded generator, the same sequence on every machine.
private struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Two clocks and a network between them: A reads the true time, B reads it + θ(t).
private struct SyntheticClocks {
    /// Node indexes (A's clock is the reference of the truth; either may be the lower index).
    var nodeA: UInt16 = 1
    var nodeB: UInt16 = 2
    /// The true time of the first request, ns since the epoch (A's clock).
    var t0: UInt64 = 1_796_526_925_119_841_753
    /// θ at t0, ns, and the drift of B against A (a fraction: 40e-6 is 40 ppm).
    var offset: Double = 0
    var drift: Double = 0
    /// B's clock jumps by this much (ns) at `jumpAt` (ns after t0).
    var jump: Double = 0
    var jumpAt: Double = .infinity
    /// Requests every `spacing` ns; one-way delays `minDelay` + up to `spread` ns (skewed towards
    /// the small, as on a network); B answers after up to `turnaround` ns.
    var spacing: Double = 20_000_000
    var minDelay: Double = 2
    var spread: Double = 150_000
    var turnaround: Double = 40_000
    /// Percentage of requests that go from B to A (their replies from A to B).
    var fromBPercent: UInt64 = 0

    /// θ at `x` ns after t0: clock_B − clock_A.
    func theta(_ x: Double) -> Double { offset + drift * x + (x >= jumpAt ? jump : 0) }
    /// The reading of A's and of B's clock at `x` ns after t0 (whole ns, as a kernel gives them).
    func clockA(_ x: Double) -> UInt64 { stamp(x) }
    func clockB(_ x: Double) -> UInt64 { stamp(x + theta(x)) }
    private func stamp(_ x: Double) -> UInt64 {
        let r = x.rounded()
        return r >= 0 ? t0 &+ UInt64(r) : t0 &- UInt64(-r)
    }

    func delay(_ g: inout SeededRandom) -> Double {
        let u = Double.random(in: 0..<1, using: &g)
        return minDelay + (u * u * u * spread).rounded()
    }

    /// Adds pair `k` (sent at k·spacing + jitter) to `clocks`; returns its send time (ns after t0).
    @discardableResult
    func addPair(_ k: Int, to clocks: ClockOffsets, _ g: inout SeededRandom) -> Double {
        let s = Double(k) * spacing + Double.random(in: 0..<1_000, using: &g).rounded()
        let u = s + delay(&g)
        let v = u + (Double.random(in: 0..<1, using: &g) * turnaround).rounded()
        let w = v + delay(&g)
        if g.next() % 100 < fromBPercent {
            // B asks, A answers: t1 and t4 on B's clock, t2 and t3 on A's.
            clocks.add(from: nodeB, to: nodeA, t1: clockB(s), t2: clockA(u), t3: clockA(v), t4: clockB(w))
        } else {
            clocks.add(from: nodeA, to: nodeB, t1: clockA(s), t2: clockB(u), t3: clockB(v), t4: clockA(w))
        }
        return s
    }

    /// A ClockOffsets fed `count` pairs, refitted.
    func feed(_ count: Int, seed: UInt64) -> ClockOffsets {
        let clocks = ClockOffsets()
        var g = SeededRandom(seed: seed)
        for k in 0..<count { addPair(k, to: clocks, &g) }
        clocks.refit()
        return clocks
    }

    /// ns after t0 of a time on A's clock.
    func sinceT0(_ t: UInt64) -> Double { Double(Int64(bitPattern: t &- t0)) }

    /// The estimate of clock_B − clock_A: does its interval at its time hold the true offset?
    /// (`time` is on A's clock, the estimate's node A here.) Slack: 1 ns, the clocks' whole ns.
    func holdsTruth(_ e: ClockOffsets.Estimate) -> Bool {
        abs(e.offset - theta(sinceT0(e.time))) <= e.bound + 1
    }

    /// Does the drift interval hold the true drift? (Slack: 1e-6 ppm.)
    func holdsDrift(_ e: ClockOffsets.Estimate) -> Bool {
        abs(e.driftPPM - drift * 1e6) <= e.driftBoundPPM + 1e-6
    }

    func describe(_ e: ClockOffsets.Estimate) -> String {
        "estimate \(e.offset) ± \(e.bound) ns at +\(sinceT0(e.time)) ns (truth \(theta(sinceT0(e.time)))), drift "
            + "\(e.driftPPM) ± \(e.driftBoundPPM) ppm (truth \(drift * 1e6)), \(e.samples) pairs, "
            + "consistent \(e.consistent)"
    }
}

@Suite("ClockOffsets: NTP-style offset and drift against injected clocks")
struct ClockOffsetTests {
    /// Offsets and drifts within NTP's 500 ppm: none, a few ms, seconds, both signs.
    static let truths: [(offset: Double, drift: Double)] = [
        (0, 0), (5_000_000, 0), (-3_200_000, 40e-6), (2_000_000_000, 300e-6), (-700_000_000, -450e-6),
        (123_456, -20e-6),
    ]

    @Test(
        "the interval holds the true offset at the estimate's time, one way and both ways",
        arguments: [0, 30] as [UInt64])
    func holdsTrueOffset(fromBPercent: UInt64) {
        for (i, truth) in Self.truths.enumerated() {
            var c = SyntheticClocks()
            c.offset = truth.offset
            c.drift = truth.drift
            c.fromBPercent = fromBPercent
            let clocks = c.feed(200, seed: 0x5eed_0000 + UInt64(i))
            guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
                Issue.record("no estimate for \(truth)")
                continue
            }
            #expect(e.nodeA == c.nodeA && e.nodeB == c.nodeB)
            #expect(e.samples == 200)
            #expect(e.consistent, "\(c.describe(e))")
            #expect(c.holdsTruth(e), "\(c.describe(e))")
            #expect(e.bound > 0 && e.bound < 200_000, "\(c.describe(e))")
            // A few ms with delays of tens of µs: the clocks are known to differ.
            if abs(truth.offset) >= 1_000_000 { #expect(e.significant, "\(c.describe(e))") }
            // Away from `time` the middle line may err by the bound plus the slopes' spread times the
            // distance (every line of the region, the true one too, has a slope in the drift interval).
            for x in stride(from: 0.0, through: 200 * c.spacing, by: 10 * c.spacing) {
                let t = c.clockA(x)
                let away = abs(c.sinceT0(t) - c.sinceT0(e.time))
                let allowed = e.bound + 2 * e.driftBoundPPM * 1e-6 * away + 1
                #expect(abs(e.offset(at: t) - c.theta(x)) <= allowed, "at +\(x): \(e.offset(at: t)) \(c.describe(e))")
            }
        }
    }

    @Test("the drift interval holds the true drift")
    func holdsTrueDrift() {
        for (i, truth) in Self.truths.enumerated() {
            for seed in 0..<4 as Range<UInt64> {
                for count in [2, 3, 5, 20, 300] {
                    var c = SyntheticClocks()
                    c.offset = truth.offset
                    c.drift = truth.drift
                    c.fromBPercent = seed * 15
                    let clocks = c.feed(count, seed: 0xd41f_7000 + UInt64(i) << 16 + seed << 12 + UInt64(count))
                    guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
                        Issue.record("no estimate for \(truth)")
                        continue
                    }
                    #expect(c.holdsDrift(e), "seed \(seed), \(count) pairs: \(c.describe(e))")
                    if count >= 300 { #expect(e.driftBoundPPM < 100, "seed \(seed): \(c.describe(e))") }
                }
            }
        }
    }

    @Test("the bound shrinks as pairs come in, and keeps the truth")
    func boundShrinks() {
        var c = SyntheticClocks()
        c.offset = -3_200_000
        c.drift = 40e-6
        let clocks = ClockOffsets()
        var g = SeededRandom(seed: 42)
        var bounds: [Double] = []
        var driftBounds: [Double] = []
        var k = 0
        for checkpoint in [2, 8, 64, 512] {
            while k < checkpoint {
                c.addPair(k, to: clocks, &g)
                k += 1
            }
            clocks.refit()
            guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
                Issue.record("no estimate after \(checkpoint) pairs")
                return
            }
            #expect(e.samples == checkpoint)
            #expect(c.holdsTruth(e), "\(checkpoint) pairs: \(c.describe(e))")
            bounds.append(e.bound)
            driftBounds.append(e.driftBoundPPM)
        }
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 > $1 }, "bounds \(bounds)")
        #expect(zip(driftBounds, driftBounds.dropFirst()).allSatisfy { $0 > $1 }, "drift bounds \(driftBounds)")
        #expect(bounds.last! < bounds.first! / 2, "bounds \(bounds)")
    }

    @Test("equal clocks, no drift: not told apart from zero, so nothing is corrected")
    func equalClocksNotSignificant() {
        for seed in 0..<8 as Range<UInt64> {
            var c = SyntheticClocks()
            c.fromBPercent = seed * 10
            for count in [1, 3, 100] {
                let clocks = c.feed(count, seed: 0xe0_0000 + seed << 8 + UInt64(count))
                guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
                    Issue.record("no estimate")
                    continue
                }
                #expect(!e.significant, "seed \(seed), \(count) pairs: \(c.describe(e))")
                #expect(e.consistent && c.holdsTruth(e), "seed \(seed), \(count) pairs: \(c.describe(e))")
            }
        }
    }

    @Test("a clock that jumps: no constant drift fits, said as consistent == false")
    func clockJump() {
        for (jump, percent) in [(10_000_000.0, 0), (-10_000_000.0, 0), (50_000_000.0, 50)] as [(Double, UInt64)] {
            var c = SyntheticClocks()
            c.offset = 1_000_000
            c.jump = jump
            // 100 pairs before the jump, 100 after: 4 s, where 500 ppm moves the offset 2 ms at most.
            c.jumpAt = 100 * c.spacing - c.spacing / 2
            c.fromBPercent = percent
            let clocks = c.feed(200, seed: 7 + UInt64(percent))
            guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
                Issue.record("no estimate")
                continue
            }
            #expect(!e.consistent, "jump \(jump): \(c.describe(e))")
            #expect(e.samples == 200)
            #expect(e.offset.isFinite && e.bound.isFinite && e.bound >= 0, "\(c.describe(e))")
            // The fallback is the least-delay pair's midpoint: its interval holds θ at that pair.
            #expect(e.driftPPM == 0 && e.driftBoundPPM == 0)
        }
    }

    @Test("hostile times (0, 1, near 2^63, near 2^64, huge differences) never trap")
    func hostileTimes() {
        let special: [UInt64] = [
            0, 1, 2, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 63) + 1, .max - 1, .max,
            1_796_526_925_119_841_753,
        ]
        let clocks = ClockOffsets()
        var g = SeededRandom(seed: 0xbad)
        let nodes: [UInt16] = [0, 1, 2, .max - 1, .max]
        for t1 in special {
            for t2 in special {
                for t3 in special {
                    for t4 in special {
                        let from = nodes[Int(g.next() % UInt64(nodes.count))]
                        let to = nodes[Int(g.next() % UInt64(nodes.count))]
                        clocks.add(from: from, to: to, t1: t1, t2: t2, t3: t3, t4: t4)
                    }
                }
            }
        }
        for _ in 0..<20_000 {
            clocks.add(
                from: UInt16(truncatingIfNeeded: g.next() % 3), to: UInt16(truncatingIfNeeded: g.next() % 3),
                t1: g.next(), t2: g.next(), t3: g.next() >> (g.next() % 64), t4: g.next() >> (g.next() % 64))
        }
        clocks.refit()
        #expect(!clocks.estimates.isEmpty)
        for e in clocks.estimates {
            #expect(e.offset.isFinite && e.bound.isFinite && e.bound >= 0, "\(e)")
            #expect(e.driftPPM.isFinite && e.driftBoundPPM.isFinite && e.driftBoundPPM >= 0, "\(e)")
            #expect(abs(e.driftPPM) <= 500 + 1e-9, "\(e)")
            for t in special { #expect(e.offset(at: t).isFinite) }
            for r in [clocks.estimate(e.nodeA, e.nodeB), clocks.estimate(e.nodeB, e.nodeA)] {
                #expect(r != nil)
            }
        }
        // What cannot be a measurement gives no estimate.
        let none = ClockOffsets()
        none.add(from: 3, to: 3, t1: 10, t2: 20, t3: 30, t4: 40)
        none.add(from: 3, to: 4, t1: 0, t2: 20, t3: 30, t4: 40)
        none.add(from: 3, to: 4, t1: 10, t2: 20, t3: 30, t4: 0)
        // A negative round trip (the reply back before B answered, on A's clock): bounds that cross.
        none.add(from: 3, to: 4, t1: 100, t2: 200, t3: 300, t4: 150)
        none.refit()
        #expect(none.estimates.isEmpty)
        #expect(none.estimate(3, 4) == nil && none.estimate(3, 3) == nil)
    }

    @Test("past maxSamples the pairs are thinned: memory stays bounded and the truth inside")
    func thinning() {
        var c = SyntheticClocks()
        c.offset = 2_000_000_000
        c.drift = -120e-6
        c.spacing = 1_000_000
        c.fromBPercent = 20
        let count = ClockOffsets.maxSamples * 5 + 123
        let clocks = c.feed(count, seed: 99)
        let pair = clocks.pairs[UInt32(c.nodeA) << 16 | UInt32(c.nodeB)]
        #expect(pair != nil)
        if let pair {
            #expect(pair.samples.count <= ClockOffsets.maxSamples)
            #expect(pair.samples.capacity <= 2 * ClockOffsets.maxSamples + 2)
        }
        guard let e = clocks.estimate(c.nodeA, c.nodeB) else {
            Issue.record("no estimate")
            return
        }
        #expect(e.samples == count)
        #expect(e.consistent && c.holdsTruth(e), "\(c.describe(e))")
        #expect(c.holdsDrift(e), "\(c.describe(e))")
    }

    @Test("more node pairs than maxPairs are counted, not estimated")
    func tooManyPairs() {
        let clocks = ClockOffsets()
        var made = 0
        outer: for a in 1..<UInt16(200) {
            for b in (a + 1)..<UInt16(200) {
                clocks.add(from: a, to: b, t1: 1_000, t2: 1_500, t3: 1_600, t4: 2_000)
                made += 1
                if made == ClockOffsets.maxPairs + 77 { break outer }
            }
        }
        #expect(clocks.estimates.count == ClockOffsets.maxPairs)
        #expect(clocks.droppedPairs == 77)
    }

    @Test("estimate(x, y) and estimate(y, x) are negations of each other, each on its own node's clock")
    func reversed() {
        for (i, truth) in Self.truths.enumerated() {
            for (nodeA, nodeB) in [(1, 2), (9, 4)] as [(UInt16, UInt16)] {
                var c = SyntheticClocks()
                c.nodeA = nodeA
                c.nodeB = nodeB
                c.offset = truth.offset
                c.drift = truth.drift
                c.fromBPercent = 25
                let clocks = c.feed(150, seed: 0x7e7e_0000 + UInt64(i) << 4 + UInt64(nodeA))
                guard let ab = clocks.estimate(nodeA, nodeB), let ba = clocks.estimate(nodeB, nodeA) else {
                    Issue.record("no estimate")
                    continue
                }
                #expect(ab.nodeA == nodeA && ab.nodeB == nodeB && ba.nodeA == nodeB && ba.nodeB == nodeA)
                #expect(ba.offset == -ab.offset && ba.bound == ab.bound, "\(c.describe(ab))")
                // −r, or exactly −r / (1 + r) on the other clock: they differ by r² (0.09 ppm at 300 ppm).
                let r = ab.driftPPM * 1e-6
                #expect(abs(ba.driftPPM + ab.driftPPM) <= r * r * 1e6 * 1.01 + 1e-9, "\(ba.driftPPM) \(ab.driftPPM)")
                #expect(abs(ba.driftBoundPPM - ab.driftBoundPPM) <= ab.driftBoundPPM * 1e-3 + 1e-9)
                #expect(ba.samples == ab.samples && ba.consistent == ab.consistent && ba.significant == ab.significant)
                // Each is given at a time of its own node A's clock (the doc comment of `time`): A's
                // estimate holds θ at its time on A's clock; B's holds −θ at its time on B's clock, the
                // same instant (B's clock reads A's + θ).
                #expect(c.holdsTruth(ab), "\(nodeA)->\(nodeB): \(c.describe(ab))")
                let aTime = Double(Int64(bitPattern: ba.time &- c.t0)) - ab.offset
                let seen = "\(ba.offset) ± \(ba.bound) at B's \(ba.time), truth \(-c.theta(aTime))"
                #expect(
                    abs(ba.offset + c.theta(aTime)) <= ba.bound + 1, "\(nodeB)->\(nodeA): \(seen); \(c.describe(ab))")
                // And corrections read at a time of the asking node's clock agree both ways.
                for x in [0.0, 75 * c.spacing, 150 * c.spacing] {
                    let forward = ab.offset(at: c.clockA(x))
                    let backward = ba.offset(at: c.clockB(x))
                    let allowed = ab.bound + 2 * ab.driftBoundPPM * 1e-6 * abs(x - c.sinceT0(ab.time)) + 2
                    #expect(abs(forward - c.theta(x)) <= allowed, "A's view at +\(x): \(forward) vs \(c.theta(x))")
                    #expect(abs(-backward - c.theta(x)) <= allowed, "B's view at +\(x): \(-backward) vs \(c.theta(x))")
                }
            }
        }
    }
}
