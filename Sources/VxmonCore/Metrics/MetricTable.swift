import Synchronization

/// What a metric family's samples are.
public enum MetricKind: Sendable, Equatable {
    case counter
    case gauge
    /// Cumulative buckets at these upper bounds (seconds, ascending), plus `+Inf`, `_sum` and `_count`.
    case histogram(buckets: [Double])

    /// The `# TYPE` word.
    public var typeName: StaticString {
        switch self {
        case .counter: "counter"
        case .gauge: "gauge"
        case .histogram: "histogram"
        }
    }
}

/// One metric family's series: an append-only table of label sets with a fixed capacity, each with its
/// value(s) in atomics.
///
/// One thread writes (the agent's reader: `slot`, `add`, `set`, `observe`), any thread reads
/// (`render`). The writer is the only one to change a value, so it adds with a relaxed load and store
/// (no read-modify-write instruction); a new label set is written into its slot first and then
/// published by a release store of the count, which the reader acquire-loads: it reads only slots
/// that were complete before it looked, and a slot never changes once published (its values aside).
///
/// The writer finds a label set's slot by an integer key its family computes from the event (the
/// label values as small codes): a direct-mapped cache of 256 keys first, then a dictionary only the
/// writer touches. Keys that name the same label values (two codes with one name) share one slot.
/// Past `capacity - 1` label sets, every new one is counted in one last series whose labels are all
/// `other`, so the table (and the exposition) stays bounded and no count is lost.
public final class MetricTable: @unchecked Sendable {
    public let name: String
    public let help: String
    public let kind: MetricKind
    /// Label names, sorted (the exposition prints label pairs in this order, as client_golang does).
    public let labelNames: [String]
    public let capacity: Int
    /// Values per series: 1, or for a histogram its buckets, `+Inf` and the sum (a Double's bits).
    let stride: Int
    private let values: UnsafeMutablePointer<Atomic<UInt64>>
    private let labels: UnsafeMutablePointer<[String]>
    private let published = Atomic<Int>(0)

    // The writer's own state.
    private var count = 0
    private var index: [UInt64: Int32] = [:]
    private var byLabels: [[String]: Int32] = [:]
    private var overflow: Int32 = -1
    private let cacheKeys: UnsafeMutablePointer<UInt64>
    private let cacheSlots: UnsafeMutablePointer<Int32>
    private static let cacheSize = 256

    /// The key no family computes (the cache's empty mark).
    public static let noKey = UInt64.max

    public init(name: String, help: String, kind: MetricKind, labelNames: [String], capacity: Int) {
        precondition(labelNames == labelNames.sorted(), "label names must be sorted: \(labelNames)")
        precondition(capacity >= 2, "a table needs room for one series and the overflow series")
        self.name = name
        self.help = help
        self.kind = kind
        self.labelNames = labelNames
        self.capacity = capacity
        switch kind {
        case .counter, .gauge: stride = 1
        case .histogram(let buckets): stride = buckets.count + 2
        }
        values = .allocate(capacity: capacity * stride)
        for i in 0..<(capacity * stride) { (values + i).initialize(to: Atomic<UInt64>(0)) }
        labels = .allocate(capacity: capacity)
        cacheKeys = .allocate(capacity: Self.cacheSize)
        cacheKeys.initialize(repeating: Self.noKey, count: Self.cacheSize)
        cacheSlots = .allocate(capacity: Self.cacheSize)
        cacheSlots.initialize(repeating: 0, count: Self.cacheSize)
    }

    deinit {
        labels.deinitialize(count: count)
        labels.deallocate()
        values.deinitialize(count: capacity * stride)
        values.deallocate()
        cacheKeys.deallocate()
        cacheSlots.deallocate()
    }

    // MARK: Writer

    /// The slot of the label set `key` stands for; `labels` (the values, in `labelNames` order) is
    /// called only the first time a key is seen. Writer thread only.
    @inline(__always)
    public func slot(_ key: UInt64, _ labels: () -> [String]) -> Int {
        // Fibonacci hashing: the top 8 bits of key * 2^64/phi spread neighbouring keys.
        let h = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 56)
        if cacheKeys[h] == key { return Int(cacheSlots[h]) }
        let s = miss(key, labels)
        cacheKeys[h] = key
        cacheSlots[h] = Int32(s)
        return s
    }

    private func miss(_ key: UInt64, _ makeLabels: () -> [String]) -> Int {
        if let s = index[key] { return Int(s) }
        let values = makeLabels()
        precondition(values.count == labelNames.count, "\(name): \(values.count) label values for \(labelNames.count) names")
        let s: Int32
        if let existing = byLabels[values] {
            s = existing
        } else if count < capacity - 1 {
            s = Int32(publish(values))
            byLabels[values] = s
        } else {
            if overflow < 0 { overflow = Int32(publish(labelNames.map { _ in "other" })) }
            // Keys past the capacity are not remembered: the dictionary stays bounded too.
            return Int(overflow)
        }
        // Bounded by the keys the families can make (their values are capped), and at most 16 per slot.
        if index.count < capacity * 16 { index[key] = s }
        return Int(s)
    }

    private func publish(_ values: [String]) -> Int {
        let s = count
        (labels + s).initialize(to: values)
        count += 1
        published.store(count, ordering: .releasing)
        return s
    }

    /// Adds `n` to a counter. Writer thread only.
    @inline(__always)
    public func add(_ slot: Int, _ n: UInt64 = 1) {
        let v = values + slot &* stride
        v.pointee.store(v.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// A series' counter, for a writer that adds to it directly (`SampleMemo`, the agent's reads). Writer thread only.
    @inline(__always)
    public func counter(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt64>> { values + slot &* stride }

    /// Adds `n` to a counter, stopping at the maximum (counts from outside, e.g. lost samples).
    public func addSaturating(_ slot: Int, _ n: UInt64) {
        let v = values + slot &* stride
        v.pointee.store(v.pointee.load(ordering: .relaxed) +| n, ordering: .relaxed)
    }

    /// Sets a gauge. Writer thread only.
    @inline(__always)
    public func set(_ slot: Int, _ value: UInt64) {
        values[slot &* stride].store(value, ordering: .relaxed)
    }

    /// A gauge series set to this is not shown (e.g. a client that is gone).
    public static let absent = UInt64.max

    /// Counts `value` (seconds) in a histogram. Writer thread only.
    public func observe(_ slot: Int, _ value: Double) {
        guard case .histogram(let buckets) = kind else { return }
        var b = buckets.count
        for (i, bound) in buckets.enumerated() where value <= bound {
            b = i
            break
        }
        let base = values + slot &* stride
        (base + b).pointee.store((base + b).pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        let sum = base + (buckets.count + 1)
        let total = Double(bitPattern: sum.pointee.load(ordering: .relaxed)) + value
        sum.pointee.store(total.bitPattern, ordering: .relaxed)
    }

    // MARK: Reader (any thread)

    /// Series published so far.
    public var seriesCount: Int { published.load(ordering: .acquiring) }

    /// Calls `body` with each published series' label values and values (one for a counter or gauge;
    /// for a histogram the per-bucket counts, `+Inf`'s, then the sum's bits).
    /// Series come in the order of their label values (as client_golang sorts them), so that two
    /// scrapes list them alike.
    public func forEachSeries(_ body: ([String], UnsafeBufferPointer<UInt64>) -> Void) {
        let n = published.load(ordering: .acquiring)
        let order = (0..<n).sorted { labels[$0].lexicographicallyPrecedes(labels[$1]) }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: stride) { buffer in
            for s in order {
                for i in 0..<stride { buffer[i] = values[s * stride + i].load(ordering: .relaxed) }
                body(labels[s], UnsafeBufferPointer(buffer))
            }
        }
    }

    /// The value of the series with these label values (tests, and the scrape's own checks).
    public func value(_ labelValues: [String]) -> UInt64? {
        var found: UInt64?
        forEachSeries { l, v in if l == labelValues { found = v[0] } }
        return found
    }
}
