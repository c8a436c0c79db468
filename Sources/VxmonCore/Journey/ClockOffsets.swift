/// Estimates the clock offset between two nodes from request/reply journeys, as NTP does from its
/// four timestamps: the request leaves node A (to-overlay, A's clock: t1) and reaches node B
/// (from-overlay, B's clock: t2); the reply leaves B (t3) and reaches A (t4). Whatever the one-way
/// delays, they are not negative, so B's offset from A, θ = clock_B − clock_A, satisfies
/// t3 − t4 ≤ θ ≤ t2 − t1. NTP takes the midpoint of the sample with the least delay; here every
/// sample bounds θ, and with a drift the offset is a line θ(t) = a + b·t (t on A's clock): the
/// samples' bounds cut the (a, b) plane to a convex region, searched in b (a concave slack, so a
/// ternary search finds its best, and a bisection its ends), with |b| at most 500 ppm (NTP's limit
/// for a clock's frequency error). The estimate is the middle of the region, and its error bound
/// half its width: the true offset is inside unless a clock jumped or drifted faster than 500 ppm
/// (then the region is empty, said as `consistent: false`, and the least-delay sample's midpoint
/// with its half delay is reported instead).
public final class ClockOffsets {
    /// An estimate of θ = clock_B − clock_A for nodes A < B (indexes of the builder's node table).
    public struct Estimate: Sendable {
        public var nodeA: UInt16
        public var nodeB: UInt16
        /// θ at `time`, ns; the error bound, ns (the true offset is within offset ± bound).
        public var offset: Double
        public var bound: Double
        /// When (A's clock, ns since the epoch) the offset is given.
        public var time: UInt64
        /// Drift of B against A in parts per million, with its bound.
        public var driftPPM: Double
        public var driftBoundPPM: Double
        /// Request/reply pairs the estimate comes from (before thinning).
        public var samples: Int
        /// The least round-trip delay of a sample, ns.
        public var minDelay: Double
        /// The samples agree with a clock of constant drift within 500 ppm.
        public var consistent: Bool
        /// The offset at `t` (A's clock), by the middle line of the region.
        public func offset(at t: UInt64) -> Double { offset + slope * (Double(Int64(bitPattern: t &- time))) }
        /// True when the bounds exclude a zero offset: the clocks are known to differ.
        public var significant: Bool { abs(offset) > bound }
        var slope: Double
    }

    /// A sample's two bounds: θ ≤ hi at time tHi, θ ≥ lo at time tLo (ns relative to the pair's origin).
    struct Sample {
        var tHi: Double
        var hi: Double
        var tLo: Double
        var lo: Double
        var delay: Double { hi - lo }
    }

    final class Pair {
        let a: UInt16
        let b: UInt16
        let origin: UInt64
        var samples: [Sample] = []
        var count = 0
        var sinceFit = 0
        var estimate: Estimate?
        init(a: UInt16, b: UInt16, origin: UInt64) {
            self.a = a
            self.b = b
            self.origin = origin
        }
    }

    /// Samples kept per node pair: past it, neighbours are merged to the one with the lesser delay.
    public static let maxSamples = 2048
    /// Node pairs followed; more are not estimated (counted in `droppedPairs`).
    public static let maxPairs = 1024
    /// The bound on drift, as a fraction (500 ppm).
    public static let maxDrift = 500e-6

    var pairs: [UInt32: Pair] = [:]
    public private(set) var droppedPairs = 0

    public init() {}

    /// Adds a request/reply pair: the request left node `from` at `t1` (its clock) and reached node
    /// `to` at `t2` (its clock); the reply left `to` at `t3` and reached `from` at `t4`.
    public func add(from: UInt16, to: UInt16, t1: UInt64, t2: UInt64, t3: UInt64, t4: UInt64) {
        guard from != to, t1 != 0, t2 != 0, t3 != 0, t4 != 0 else { return }
        let a = min(from, to)
        let b = max(from, to)
        let id = UInt32(a) << 16 | UInt32(b)
        let pair: Pair
        if let p = pairs[id] {
            pair = p
        } else {
            guard pairs.count < Self.maxPairs else {
                droppedPairs += 1
                return
            }
            pair = Pair(a: a, b: b, origin: from == a ? t1 : t2)
            pairs[id] = pair
        }
        func rel(_ t: UInt64) -> Double { Double(Int64(bitPattern: t &- pair.origin)) }
        func diff(_ x: UInt64, _ y: UInt64) -> Double { Double(Int64(bitPattern: x &- y)) }
        let s: Sample
        if from == a {
            // θ = clock_to − clock_from: θ ≤ t2 − t1 (at t1), θ ≥ t3 − t4 (at t4); times on from's clock.
            s = Sample(tHi: rel(t1), hi: diff(t2, t1), tLo: rel(t4), lo: diff(t3, t4))
        } else {
            // θ = clock_from − clock_to: θ ≥ t1 − t2 (at t2), θ ≤ t4 − t3 (at t3); times on to's clock.
            s = Sample(tHi: rel(t3), hi: diff(t4, t3), tLo: rel(t2), lo: diff(t1, t2))
        }
        // A sample whose bounds cross (a negative round trip) is not a measurement of one packet's way.
        guard s.hi >= s.lo, s.hi.isFinite, s.lo.isFinite else { return }
        pair.count += 1
        pair.samples.append(s)
        if pair.samples.count > Self.maxSamples { Self.thin(&pair.samples) }
        pair.sinceFit += 1
        // Fitted at 1, 2, 4, ... samples and every 65,536 (a fit reads every sample kept, a few hundred
        // times), and by `refit()` at the end.
        if pair.count & (pair.count - 1) == 0 || pair.sinceFit >= 65536 { fit(pair) }
    }

    /// Halves the samples, keeping of each neighbouring two the one with the lesser delay.
    static func thin(_ samples: inout [Sample]) {
        var kept: [Sample] = []
        kept.reserveCapacity(samples.count / 2 + 1)
        var i = 0
        while i < samples.count {
            if i + 1 < samples.count {
                kept.append(samples[i].delay <= samples[i + 1].delay ? samples[i] : samples[i + 1])
            } else {
                kept.append(samples[i])
            }
            i += 2
        }
        samples = kept
    }

    /// The estimate of the offset between `x` and `y`, oriented as clock_y − clock_x (nil: no sample).
    public func estimate(_ x: UInt16, _ y: UInt16) -> Estimate? {
        guard x != y else { return nil }
        let a = min(x, y)
        let b = max(x, y)
        guard let pair = pairs[UInt32(a) << 16 | UInt32(b)], var e = pair.estimate else { return nil }
        if x != a {
            // The same instant on the other node's clock, which reads this one's + θ.
            e.time = e.time &+ UInt64(bitPattern: clampedInt64(e.offset.rounded()))
            e.offset = -e.offset
            // θ'(t_B) = −θ(t_A) with t_B = t_A + θ(t_A): the slope on B's clock is −b / (1 + b).
            e.slope = -e.slope / (1 + e.slope)
            e.driftPPM = e.slope * 1e6
            swap(&e.nodeA, &e.nodeB)
        }
        return e
    }

    /// Fits every pair to all of its samples (the estimates are otherwise refreshed as samples double,
    /// then every 256).
    public func refit() {
        for pair in pairs.values where pair.sinceFit > 0 { fit(pair) }
    }

    /// Every pair's estimate (A < B), in node order.
    public var estimates: [Estimate] {
        pairs.keys.sorted().compactMap { id in estimate(UInt16(id >> 16), UInt16(id & 0xffff)) }
    }

    func fit(_ pair: Pair) {
        pair.sinceFit = 0
        let s = pair.samples
        guard let last = s.last else { return }
        let tr = max(last.tHi, last.tLo)
        // L(b) = max lo_i − b·tLo_i; U(b) = min hi_i − b·tHi_i; the slack U − L is concave in b.
        func lower(_ b: Double, at t: Double) -> Double {
            var m = -Double.infinity
            for x in s { m = max(m, x.lo + b * (t - x.tLo)) }
            return m
        }
        func upper(_ b: Double, at t: Double) -> Double {
            var m = Double.infinity
            for x in s { m = min(m, x.hi + b * (t - x.tHi)) }
            return m
        }
        func slack(_ b: Double) -> Double { upper(b, at: 0) - lower(b, at: 0) }
        let limit = Self.maxDrift
        var lo = -limit
        var hi = limit
        for _ in 0..<64 {
            let m1 = lo + (hi - lo) / 3
            let m2 = hi - (hi - lo) / 3
            if slack(m1) < slack(m2) { lo = m1 } else { hi = m2 }
        }
        let best = (lo + hi) / 2
        let minDelay = s.map(\.delay).min() ?? 0
        let minSample = s.min { $0.delay < $1.delay }!
        let origin = pair.origin
        guard slack(best) >= 0 else {
            // No line fits: NTP's answer from the sample with the least delay.
            let mid = (minSample.hi + minSample.lo) / 2
            pair.estimate = Estimate(
                nodeA: pair.a, nodeB: pair.b, offset: mid, bound: minSample.delay / 2,
                time: origin &+ UInt64(bitPattern: clampedInt64(minSample.tHi)), driftPPM: 0, driftBoundPPM: 0, samples: pair.count,
                minDelay: minDelay, consistent: false, slope: 0)
            return
        }
        // The ends of the feasible interval of b.
        func edge(_ inside: Double, _ outside: Double) -> Double {
            var i = inside
            var o = outside
            if slack(o) >= 0 { return o }
            for _ in 0..<56 {
                let m = (i + o) / 2
                if slack(m) >= 0 { i = m } else { o = m }
            }
            return i
        }
        let bMin = edge(best, -limit)
        let bMax = edge(best, limit)
        // The least lower bound and the greatest upper bound of θ(tr) over the region.
        var l = bMin
        var r = bMax
        for _ in 0..<64 {
            let m1 = l + (r - l) / 3
            let m2 = r - (r - l) / 3
            if lower(m1, at: tr) > lower(m2, at: tr) { l = m1 } else { r = m2 }
        }
        let least = lower((l + r) / 2, at: tr)
        l = bMin
        r = bMax
        for _ in 0..<64 {
            let m1 = l + (r - l) / 3
            let m2 = r - (r - l) / 3
            if upper(m1, at: tr) < upper(m2, at: tr) { l = m1 } else { r = m2 }
        }
        let greatest = upper((l + r) / 2, at: tr)
        // The middle line: the best slope, and the middle of its range of offsets.
        let mid = (lower(best, at: tr) + upper(best, at: tr)) / 2
        // The true offset is in [least, greatest]; the middle line's value is too.
        let bound = max(mid - least, greatest - mid)
        pair.estimate = Estimate(
            nodeA: pair.a, nodeB: pair.b, offset: mid, bound: bound, time: origin &+ UInt64(bitPattern: clampedInt64(tr)),
            driftPPM: best * 1e6, driftBoundPPM: max(best - bMin, bMax - best) * 1e6, samples: pair.count, minDelay: minDelay,
            consistent: true, slope: best)
    }
}

/// `d` as an Int64, saturating (a Double outside Int64's range, or NaN, would trap in `Int64(d)`).
@inline(__always)
func clampedInt64(_ d: Double) -> Int64 {
    if d.isNaN { return 0 }
    if d >= 9.2e18 { return .max }
    if d <= -9.2e18 { return .min }
    return Int64(d)
}
