import CVxmonABI
import Glibc
import Synchronization
import VxmonCore
import VxmonLive

/// How a live session reads.
public struct LiveOptions: Sendable {
    /// The lab's ring buffer by default: on the lab's datapath it costs the flood about half of what
    /// `cilium_events` does (see README, live monitoring cost); `cilium_events` is Cilium's own.
    public var buffer: BufferKind = .ring
    /// Nodes to read (nil: all nodes of the lab).
    public var nodes: [String]?
    /// Perf buffer data pages per CPU (a power of two): by default 8 MiB per node spread over its
    /// CPUs, 64 to 1024 pages (4 MiB) per CPU.
    public var perfPagesPerCPU = LiveOptions.defaultPerfPages
    /// Perf samples per wakeup; 0 (the default): wake when a quarter of a CPU's ring is pending.
    public var perfWakeupEvents: UInt32 = 0
    /// Every buffer is drained this often, whether or not the kernel woke the reader: the datapath
    /// and the perf rings wake it only when a lot is pending, because wakeups are what costs.
    public var tickMilliseconds: Int32 = 10
    /// Datapath failure counters, the lab's presence and the output are checked this often, and the
    /// offset from the datapath's clock to the wall clock is sampled again (so a step of the wall
    /// clock is followed within this period).
    public var housekeepingMilliseconds: Int32 = 100
    /// Stop by itself after this many seconds.
    public var duration: Double?
    /// A file descriptor whose error/hangup ends the session (stdout, for `vxmon | head`).
    public var watchFD: Int32?
    /// Leave the datapath's events off at start: the sink switches them per node (the agent turns a
    /// node's events on while a client reads it). They are switched off at the end either way.
    public var eventsOnDemand = false

    public init() {}

    public static let defaultPerfPages: Int = {
        let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        let pages = (8 << 20) / pageSize / Libbpf.possibleCPUs
        var power = 64
        while power * 2 <= min(pages, 1024) { power *= 2 }
        return power
    }()
}

/// Reads one lab's event buffers live through libbpf, from one thread with epoll: the lab's ring
/// buffer (one for all nodes, records in the order written) or each node's pinned `cilium_events`
/// perf array (merged in timestamp order). It turns the datapath's events on when it starts and off
/// when it ends, and detaches nothing else (the lab's programs stay).
///
/// Every event reaches the sink with the time the datapath wrote it (CLOCK_BOOTTIME, in both
/// buffers), converted to Unix-epoch nanoseconds with an offset re-sampled every housekeeping round
/// (`BootClock`). Lost records, which have no time of their own, get the time they were read.
///
/// Holding a `LiveSession` holds the lab's monitor lock: a second session is refused.
public final class LiveSession: LiveEventSource, SourceDelegate, PollLoopDelegate, @unchecked Sendable {
    public let topology: LabTopology
    public let paths: LabPaths
    public let options: LiveOptions
    public let nodeNames: [String]
    private let sink: any LiveSink
    private var lock: MonitorLock?
    private let maps: [NodeMaps]
    private let eventMaps: [BPFMap]
    private var contexts: [SourceContext] = []
    private var perfSources: [PerfBufferSource] = []
    private var ringSources: [RingBufferSource] = []
    private var ringContexts: [RingBufferSource.Context] = []
    private let resolvers: [InterfaceResolver]
    /// Ring reserve failures and perf output failures per node and CPU, at the last reading.
    private var ringFailBaseline: [[UInt64]] = []
    private var perfFailBaseline: [[UInt64]] = []
    /// The wall clock when the current poll round began: the time of lost records.
    private var now: UInt64 = 0
    /// CLOCK_BOOTTIME -> wall clock, for the events' own times.
    private var clock = BootClock()
    /// The read loop over this session's buffers.
    private var loop: PollLoop!
    /// Counters, touched only by the polling thread; `published` is their copy for other threads.
    private var counts = LiveStats()
    private let published = Mutex(LiveStats())
    private var discarding = true
    /// Perf samples carry kernel timestamps: each poll round is staged and delivered in time order,
    /// so the events of several CPUs and nodes read in one round come out as they happened.
    private let staging: EventStaging?

    /// Opens the lab's maps for the selected nodes, takes the monitor lock and creates the readers.
    /// Events are turned on only by `run()`.
    /// `extraSources` are read by the same poll loop (the agent's sockets).
    public init(
        topology: LabTopology, options: LiveOptions, sink: any LiveSink, extraSources: [any PollSource] = []
    ) throws {
        self.topology = topology
        let paths = LabPaths(lab: topology.lab)
        self.paths = paths
        self.options = options
        self.sink = sink
        let selected = try LiveSession.selectedNodes(topology, options)
        nodeNames = selected.map(\.name)
        lock = try MonitorLock(paths: paths)
        let maps = try selected.map { try NodeMaps(paths: paths, node: $0.name) }
        self.maps = maps
        eventMaps = try maps.map { try $0.eventMap(options.buffer) }
        resolvers = try selected.map { try InterfaceResolver(namespace: $0.namespace) }
        staging = options.buffer == .perf ? EventStaging() : nil

        for node in maps {
            let config = node.readConfig()
            if config.abi_version != UInt32(VXMON_ABI_VERSION) {
                throw VxmonError(
                    "lab '\(topology.lab)' runs a datapath of another vxmon version (ABI \(config.abi_version), "
                        + "this vxmon reads \(VXMON_ABI_VERSION)); rebuild it: vxmon lab down --lab \(topology.lab) "
                        + "&& vxmon lab up --lab \(topology.lab)")
            }
        }
        switch options.buffer {
        case .perf:
            for (i, map) in eventMaps.enumerated() {
                let context = SourceContext(delegate: self, node: i)
                contexts.append(context)
                perfSources.append(
                    try PerfBufferSource(
                        mapFD: map.fd, pagesPerCPU: options.perfPagesPerCPU, wakeupEvents: options.perfWakeupEvents,
                        context: context))
            }
        case .ring:
            // One ring serves the whole lab: read each distinct ring once, and map the node index in
            // its records to this session's nodes.
            let labIndex = selected.map { node in topology.nodes.firstIndex { $0.name == node.name }! }
            // The kernel's map id tells which pins are the same ring (a map whose id cannot be read
            // counts as its own ring).
            let ids = eventMaps.enumerated().map { i, map in map.objectID.map(Int.init) ?? -1 - i }
            for (i, map) in eventMaps.enumerated() where ids.firstIndex(of: ids[i]) == i {
                var table = [Int?](repeating: nil, count: topology.nodes.count)
                for j in ids.indices where ids[j] == ids[i] { table[labIndex[j]] = j }
                let context = RingBufferSource.Context(delegate: self, sessionNodes: table)
                ringContexts.append(context)
                ringSources.append(try RingBufferSource(mapFD: map.fd, context: context))
            }
        }
        var schedule = PollSchedule()
        schedule.tickMilliseconds = options.tickMilliseconds
        schedule.housekeepingMilliseconds = options.housekeepingMilliseconds
        schedule.duration = options.duration
        schedule.watchFD = options.watchFD
        loop = PollLoop(
            sources: perfSources as [any PollSource] + ringSources as [any PollSource] + extraSources, schedule: schedule)
    }

    /// The nodes `options` selects (all by default), in the lab's order.
    public static func selectedNodes(_ topology: LabTopology, _ options: LiveOptions) throws -> [LabTopology.Node] {
        guard let wanted = options.nodes else { return topology.nodes }
        return try wanted.map { try topology.requireNode($0) }
    }

    /// Switches node `node`'s (an index into `nodeNames`) events on or off (polling thread).
    @discardableResult
    public func setEvents(node: Int, on: Bool) -> Bool {
        (try? maps[node].setEventsMode(on ? options.buffer.eventsMode : UInt32(VXMON_EVENTS_OFF))) != nil
    }

    /// Counters so far (safe to read from another thread).
    public var stats: LiveStats { published.withLock { $0 } }

    private func publish() {
        let snapshot = counts
        published.withLock { $0 = snapshot }
    }

    /// Frees the readers and releases the monitor lock (idempotent; also done by deinit). Call it
    /// after `run()` has returned.
    public func close() {
        for source in perfSources { source.close() }
        for source in ringSources { source.close() }
        perfSources.removeAll()
        ringSources.removeAll()
        lock = nil
    }

    /// Asks `run()` to return after its current poll round (any thread).
    public func requestStop() { loop.requestStop() }

    // MARK: Running

    /// Turns events on, polls until stopped (SIGINT/SIGTERM via `stopRequested`, `requestStop()`,
    /// the duration, a closed output, the lab going away), turns events off, drains and flushes.
    /// Blocks: call it on a dedicated thread.
    public func run() throws -> LiveStats {
        guard lock != nil else { throw VxmonError("live session already closed") }
        sampleClock()
        // Ring records left from an earlier session would be replayed as new: drop them.
        for source in ringSources { while source.consume().more {} }
        discarding = false
        ringFailBaseline = maps.map { $0.statCounters(VXMON_STAT_RING_FAIL) }
        perfFailBaseline = maps.map { $0.statCounters(VXMON_STAT_PERF_FAIL) }

        // Nodes this session does not read must not write: the ring is shared, and their records
        // would only crowd it (an earlier monitor killed with -9 can have left them on).
        let selected = Set(nodeNames)
        for node in topology.nodes where !selected.contains(node.name) {
            try? NodeMaps(paths: paths, node: node.name).setEventsMode(UInt32(VXMON_EVENTS_OFF))
        }
        if !options.eventsOnDemand {
            for node in maps { try node.setEventsMode(options.buffer.eventsMode) }
        }
        var endReason = "stopped"
        do {
            defer {
                // Events off first, then read what is left, so nothing is cut in half.
                for node in maps { try? node.setEventsMode(UInt32(VXMON_EVENTS_OFF)) }
                now = wallClockNanoseconds()
                drainAll()
                readFailureCounters()
                _ = sink.flush()
                counts.endReason = endReason
                publish()
            }
            endReason = try loop.run(self).description
        }
        return counts
    }

    // MARK: PollLoopDelegate (polling thread)

    public func roundStarting() { now = wallClockNanoseconds() }

    public func roundFinished() { deliverStaged() }

    public func tick() { publish() }

    public func housekeeping() -> PollLoop.End? {
        sampleClock()
        readFailureCounters()
        if !sink.flush() { return sink.stopReason.map { .finished($0) } ?? .outputClosed }
        return nil
    }

    public func slowCheck() -> PollLoop.End? {
        FileSystem.exists(paths.stateFile) ? nil : .finished("lab '\(topology.lab)' went down")
    }

    /// Samples the wall-clock offset of the datapath's clock again (a few hundred ns).
    private func sampleClock() {
        clock.sample()
        counts.clockBracket = max(counts.clockBracket, clock.bracket)
    }

    /// Drains everything, however long the backlog (used once events are off).
    private func drainAll() {
        for source in perfSources { _ = source.consume() }
        for source in ringSources { while source.consume().more {} }
        deliverStaged()
    }

    /// Ring reserve failures become lost records (per CPU, as deltas); perf output failures are counted.
    private func readFailureCounters() {
        for (node, map) in maps.enumerated() {
            let ring = map.statCounters(VXMON_STAT_RING_FAIL)
            if ring.count == ringFailBaseline[node].count {
                for cpu in ring.indices where ring[cpu] > ringFailBaseline[node][cpu] {
                    let delta = ring[cpu] - ringFailBaseline[node][cpu]
                    sink.lost(node: node, cpu: cpu, count: delta, time: now)
                    counts.lost +|= delta
                }
                ringFailBaseline[node] = ring
            }
            let perf = map.statCounters(VXMON_STAT_PERF_FAIL)
            if perf.count == perfFailBaseline[node].count {
                var delta: UInt64 = 0
                for cpu in perf.indices where perf[cpu] > perfFailBaseline[node][cpu] {
                    delta &+= perf[cpu] - perfFailBaseline[node][cpu]
                }
                counts.perfOutputFailures +|= delta
                perfFailBaseline[node] = perf
            }
        }
    }

    // MARK: SourceDelegate (polling thread)

    func sourceSample(node: Int, cpu: Int, kernelTime: UInt64, bytes: UnsafeRawBufferPointer) {
        if discarding { return }
        if let staging {
            staging.add(node: node, cpu: cpu, time: kernelTime, bytes: bytes)
        } else {
            deliver(node: node, cpu: cpu, kernelTime: kernelTime, bytes: bytes)
        }
    }

    func sourceUnattributed(cpu: Int, reason: String) {
        if discarding { return }
        counts.unattributed &+= 1
        if counts.unattributed <= 3 {
            EventPipeline.diagnostic("vxmon: skipped \(reason) (CPU \(cpu))")
        }
    }

    func sourceLost(node: Int, cpu: Int, count: UInt64) {
        if let staging {
            staging.addLost(node: node, cpu: cpu, count: count)
        } else {
            counts.lost +|= count
            sink.lost(node: node, cpu: cpu, count: count, time: now)
        }
    }

    /// Hands what the last poll round staged to the sink, in kernel time order.
    private func deliverStaged() {
        guard let staging, !staging.isEmpty else { return }
        staging.drain { node, cpu, time, bytes, lost in
            if let bytes {
                deliver(node: node, cpu: cpu, kernelTime: time, bytes: bytes)
            } else {
                counts.lost +|= lost
                sink.lost(node: node, cpu: cpu, count: lost, time: now)
            }
        }
    }

    /// `kernelTime`: CLOCK_BOOTTIME ns, 0 if unknown (the event then gets the round's wall clock).
    private func deliver(node: Int, cpu: Int, kernelTime: UInt64, bytes: UnsafeRawBufferPointer) {
        let time = kernelTime != 0 ? clock.wallClock(kernelTime) : now
        if let ifindex = Self.interfaceIndex(bytes), let (index, name) = resolvers[node].learn(ifindex) {
            sink.interfaceName(node: node, ifindex: index, name: name, time: time)
        }
        counts.samples &+= 1
        sink.sample(node: node, cpu: cpu, bytes: bytes, time: time)
    }

    /// Delivers every interface name known at start to the sink (call once, before `run`).
    public func announceInterfaces() {
        let time = wallClockNanoseconds()
        for (node, resolver) in resolvers.enumerated() {
            for (ifindex, name) in resolver.known.sorted(by: { $0.key < $1.key }) {
                sink.interfaceName(node: node, ifindex: ifindex, name: name, time: time)
            }
        }
    }

    /// The ifindex a trace or drop record refers to (0 and other types: nil), read at the offsets the
    /// decoder uses; the decoder itself validates the record later.
    static func interfaceIndex(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard let type = bytes.first else { return nil }
        let offset: Int
        switch Int32(type) {
        case VXMON_NOTIFY_TRACE: offset = EventLayout.Trace.ifindex
        case VXMON_NOTIFY_DROP: offset = EventLayout.Drop.ifindex
        default: return nil
        }
        guard bytes.count >= offset + 4 else { return nil }
        let ifindex = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        return ifindex == 0 ? nil : ifindex
    }
}

/// The events of one poll round, copied out of the kernel buffers so they can be delivered in perf
/// timestamp order (libbpf releases buffer space as soon as a callback returns). Each CPU ring is
/// already in time order, so a round is a few sorted runs (one per node and CPU read) that are
/// merged, not sorted.
final class EventStaging {
    struct Entry {
        var time: UInt64
        var lost: UInt64
        var offset: Int32
        /// -1 for a lost record.
        var length: Int32
        var node: Int32
        var cpu: Int32
    }

    private var entries: [Entry] = []
    /// Index of the first entry of every run.
    private var runStarts: [Int] = []
    private var arena: UnsafeMutableRawPointer
    private var capacity = 1 << 20
    private var used = 0

    init() { arena = .allocate(byteCount: capacity, alignment: 16) }
    deinit { arena.deallocate() }

    var isEmpty: Bool { entries.isEmpty }

    private func append(_ entry: Entry) {
        if let last = entries.last, last.node == entry.node, last.cpu == entry.cpu, last.time <= entry.time {
            entries.append(entry)
        } else {
            runStarts.append(entries.count)
            entries.append(entry)
        }
    }

    func add(node: Int, cpu: Int, time: UInt64, bytes: UnsafeRawBufferPointer) {
        if used + bytes.count > capacity {
            var newCapacity = capacity * 2
            while used + bytes.count > newCapacity { newCapacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            grown.copyMemory(from: arena, byteCount: used)
            arena.deallocate()
            arena = grown
            capacity = newCapacity
        }
        if let base = bytes.baseAddress, bytes.count > 0 {
            (arena + used).copyMemory(from: base, byteCount: bytes.count)
        }
        append(
            Entry(
                time: time, lost: 0, offset: Int32(used), length: Int32(bytes.count), node: Int32(node), cpu: Int32(cpu)
            ))
        // Keep records 8-byte aligned in the arena, as they were in the perf buffer.
        used += (bytes.count + 7) & ~7
    }

    /// A lost record sorts right after the last sample read from the same node and CPU.
    func addLost(node: Int, cpu: Int, count: UInt64) {
        let time = entries.last { $0.node == Int32(node) && $0.cpu == Int32(cpu) }?.time ?? 0
        append(Entry(time: time, lost: count, offset: 0, length: -1, node: Int32(node), cpu: Int32(cpu)))
    }

    /// Calls `body(node, cpu, time, bytes or nil for a lost record, lost count)` for every entry in
    /// time order (runs merged; ties keep reading order), then empties the stage. `bytes` is valid
    /// only during the call; a lost record's time is that of the sample before it.
    func drain(_ body: (Int, Int, UInt64, UnsafeRawBufferPointer?, UInt64) -> Void) {
        func deliver(_ e: Entry) {
            body(
                Int(e.node), Int(e.cpu), e.time,
                e.length < 0 ? nil : UnsafeRawBufferPointer(start: arena + Int(e.offset), count: Int(e.length)), e.lost)
        }
        if runStarts.count == 1 {
            for e in entries { deliver(e) }
        } else {
            var cursors = runStarts
            var ends = Array(runStarts.dropFirst())
            ends.append(entries.count)
            var remaining = entries.count
            while remaining > 0 {
                var best = -1
                for r in cursors.indices where cursors[r] < ends[r] {
                    if best < 0 || entries[cursors[r]].time < entries[cursors[best]].time { best = r }
                }
                deliver(entries[cursors[best]])
                cursors[best] += 1
                remaining -= 1
            }
        }
        entries.removeAll(keepingCapacity: true)
        runStarts.removeAll(keepingCapacity: true)
        used = 0
    }
}
