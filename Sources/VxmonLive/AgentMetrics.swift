import Glibc
import Synchronization
import VxmonCore
import VxmonWire

/// What the agent's `/metrics` shows: Hubble's flow metrics (`HubbleMetrics`) and vxmon's own health,
/// counted on the agent's reader thread, rendered by the metrics server's thread from the tables'
/// atomics (the scrape only reads).
///
/// Health:
/// - `vxmon_events_read_total{cpu,node}`, `vxmon_events_lost_total{cpu,node}`: samples read, and
///   samples the kernel reported lost, per node and CPU (CPUs from 256 on are `other`).
/// - `vxmon_agent_clients`: clients connected.
/// - `vxmon_agent_client_queue_bytes{client}`, `vxmon_agent_client_events_sent_total{client}`,
///   `vxmon_agent_client_events_lost_total{client}`: per client, named by its program and a number
///   (`monitor-0`, `hubble-0`; the lowest free number among the connected clients of that program, so a
///   client that reconnects continues its series; from 16 on `<program>-other`). Sent counts events
///   queued for the client; those later dropped from its queue to make room for others count as lost
///   too.
/// - `process_cpu_seconds_total`, `process_resident_memory_bytes`: from /proc/self/stat at scrape time.
public final class AgentMetrics: @unchecked Sendable {
    public let hubble: HubbleMetrics
    public let eventsRead: MetricTable
    public let eventsLost: MetricTable
    public let clientQueue: MetricTable
    public let clientSent: MetricTable
    public let clientLost: MetricTable
    private let nodeNames: [String]
    /// Samples the decoder refused (counted in `vxmon_events_read_total`, in no Hubble family).
    public let undecodable: MetricTable
    /// Clients connected now (stored by the reader when they change).
    public let clients = Atomic<Int>(0)
    /// False: the reader counts no sample (`vxmon lab bench --metrics` compares slices with and
    /// without counting; nothing else turns it off). Any thread.
    public func setCounting(_ on: Bool) { countingFlag.pointee.store(on, ordering: .relaxed) }
    private let countingFlag: UnsafeMutablePointer<Atomic<Bool>> = {
        let p = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: 1)
        p.initialize(to: Atomic<Bool>(true))
        return p
    }()

    /// The exposition's size at most, whatever the traffic: every table full (its capacity), every
    /// label value as long as it can be (node names clipped to 64 bytes). Checked by MetricsBoundTests,
    /// which fills every table; a lab's exposition is a few KiB, and a flood of random ports adds at
    /// most 129 port series per node and protocol (`HubbleMetrics.Limits.ports`, then `other`).
    public static let maxExpositionBytes = 1 << 20

    /// Nodes whose read counters the reader keeps at hand (per CPU); later ones are looked up.
    static let readNodes = 16
    private let readCounters: UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>?>.allocate(capacity: readNodes * cpuLimit)
        p.initialize(repeating: nil, count: readNodes * cpuLimit)
        return p
    }()

    /// CPUs with their own label value.
    public static let cpuLimit = 256
    /// Numbered clients per program (later ones are `<program>-other`).
    public static let clientsPerProgram = 16

    /// `journeys`: also build every packet's journey for `vxmon_journey_hop_latency_seconds`.
    /// `memo`: see `HubbleMetrics.init`.
    public init(nodeNames: [String], release: CiliumRelease = .v1_13, journeys: Bool = false, memo: Bool = true) {
        self.nodeNames = nodeNames
        hubble = HubbleMetrics(nodeNames: nodeNames, release: release, journeys: journeys, memo: memo)
        eventsRead = MetricTable(
            name: "vxmon_events_read_total", help: "Samples the agent read from the datapath's event buffers.",
            kind: .counter, labelNames: ["cpu", "node"], capacity: 1024)
        eventsLost = MetricTable(
            name: "vxmon_events_lost_total", help: "Samples the kernel reported lost (the buffer was full).",
            kind: .counter, labelNames: ["cpu", "node"], capacity: 1024)
        undecodable = MetricTable(
            name: "vxmon_events_undecodable_total", help: "Samples read that are not a valid event (not counted by hubble_*).",
            kind: .counter, labelNames: ["node"], capacity: 32)
        let perClient = ClientProgram.allCases.count * (Self.clientsPerProgram + 1) + 1
        clientQueue = MetricTable(
            name: "vxmon_agent_client_queue_bytes", help: "Bytes queued for a client of the agent.", kind: .gauge,
            labelNames: ["client"], capacity: perClient)
        clientSent = MetricTable(
            name: "vxmon_agent_client_events_sent_total", help: "Events queued for a client of the agent.",
            kind: .counter, labelNames: ["client"], capacity: perClient)
        clientLost = MetricTable(
            name: "vxmon_agent_client_events_lost_total",
            help: "Events a client of the agent lost (its queue was full, or dropped for other clients).",
            kind: .counter, labelNames: ["client"], capacity: perClient)
    }

    deinit {
        readCounters.deallocate()
        countingFlag.deinitialize(count: 1)
        countingFlag.deallocate()
    }

    /// The reader's per-sample path as a value of pointers, so that it counts no references per
    /// sample: the switch, the read counters at hand, the sample memo. The metrics must outlive it.
    public struct FastPath: @unchecked Sendable {
        let counting: UnsafeMutablePointer<Atomic<Bool>>
        let readCounters: UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>?>
        let memo: MemoCounter

        /// What is left for `AgentMetrics.sample(...:left:)`.
        public enum Left { case nothing, decoding, everything }

        /// Counts what it can of one sample without the metrics object.
        @inline(__always)
        public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer) -> Left {
            guard counting.pointee.load(ordering: .relaxed) else { return .nothing }
            guard node >= 0 && node < AgentMetrics.readNodes && cpu >= 0 && cpu < AgentMetrics.cpuLimit,
                let v = readCounters[node &* AgentMetrics.cpuLimit &+ cpu]
            else { return .everything }
            v.pointee.store(v.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            return memo.count(bytes.bytes, node: node) ? .nothing : .decoding
        }
    }

    public var fastPath: FastPath { FastPath(counting: countingFlag, readCounters: readCounters, memo: hubble.memoCounter) }

    // MARK: Reader thread

    /// What `FastPath.sample` left of a sample: its decoding, or everything.
    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64 = 0, left: FastPath.Left) {
        switch left {
        case .nothing: return
        case .everything: sample(node: node, cpu: cpu, bytes: bytes, time: time)
        case .decoding:
            if !hubble.countDecoding(sample: bytes.bytes, node: node, time: time) { countUndecodable(node) }
        }
    }

    /// One sample of node `node`: counted, decoded once, and its flow counted by Hubble's families.
    @inline(__always)
    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64 = 0) {
        guard countingFlag.pointee.load(ordering: .relaxed) else { return }
        // The read counter of (node, cpu), found once.
        if node >= 0 && node < Self.readNodes && cpu >= 0 && cpu < Self.cpuLimit {
            let i = node &* Self.cpuLimit &+ cpu
            if readCounters[i] == nil { readCounters[i] = eventsRead.counter(readSlot(node, cpu)) }
            let v = readCounters[i].unsafelyUnwrapped
            v.pointee.store(v.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        } else {
            eventsRead.add(readSlot(node, cpu))
        }
        if !hubble.count(sample: bytes.bytes, node: node, time: time) { countUndecodable(node) }
    }

    private func countUndecodable(_ node: Int) {
        undecodable.add(undecodable.slot(UInt64(min(max(node, 0), 255))) { [self] in [nodeLabel(node)] })
    }

    private func readSlot(_ node: Int, _ cpu: Int) -> Int {
        eventsRead.slot(key(node, cpu)) { [self] in [cpuLabel(cpu), nodeLabel(node)] }
    }

    /// Makes what the reader counted visible to the scrape: the samples the sample memo counted
    /// (`HubbleMetrics.publish`). The agent calls it at most 50 ms apart while it reads. Reader thread
    /// only (or once the reader has stopped).
    public func publish() { hubble.publish() }

    /// `count` samples lost on `cpu` of node `node`.
    public func lost(node: Int, cpu: Int, count: UInt64, time: UInt64 = 0) {
        eventsLost.addSaturating(eventsLost.slot(key(node, cpu)) { [self] in [cpuLabel(cpu), nodeLabel(node)] }, count)
        hubble.lost(node: node, count: count, time: time)
    }

    /// The series key of (node, cpu): nodes and CPUs past their caps share the `other` value, as
    /// their labels do.
    @inline(__always)
    func key(_ node: Int, _ cpu: Int) -> UInt64 {
        let c = cpu >= 0 && cpu < Self.cpuLimit ? cpu : 0xFFFF
        let n = node >= 0 && node < min(nodeNames.count, hubble.limits.nodes) ? node : 255
        return UInt64(n) << 16 | UInt64(c)
    }

    private func cpuLabel(_ cpu: Int) -> String { cpu >= 0 && cpu < Self.cpuLimit ? String(cpu) : "other" }
    private func nodeLabel(_ node: Int) -> String {
        node >= 0 && node < min(nodeNames.count, hubble.limits.nodes) ? hubble.nodeNames[node] : "other"
    }

    /// A client's series (the same slot in the three client tables), by program and number.
    public func clientSlot(program: ClientProgram, number: Int) -> Int {
        let n = number >= 0 && number < Self.clientsPerProgram ? number : Self.clientsPerProgram
        let key = UInt64(ClientProgram.allCases.firstIndex(of: program) ?? 0) << 8 | UInt64(n)
        let label = program.rawValue + "-" + (n == Self.clientsPerProgram ? "other" : String(n))
        let s = clientQueue.slot(key) { [label] }
        // The three tables get their series in the same order, so their slots agree.
        _ = clientSent.slot(key) { [label] }
        _ = clientLost.slot(key) { [label] }
        return s
    }

    // MARK: Scrape (any thread)

    /// Writes the whole exposition.
    public func render(_ format: MetricsFormat, into out: OutputBuffer) {
        let w = MetricsWriter(out: out, format: format)
        for table in hubble.tables { w.family(table) }
        for table in [eventsRead, eventsLost, undecodable] { w.family(table) }
        w.single(name: "vxmon_agent_clients", help: "Clients connected to the agent.", kind: .gauge, UInt64(clients.load(ordering: .relaxed)))
        for table in [clientQueue, clientSent, clientLost] { w.family(table) }
        let process = ProcessStats.read()
        w.single(
            name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", kind: .counter,
            process.cpuSeconds)
        w.single(
            name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", kind: .gauge,
            UInt64(process.residentBytes))
        w.finish()
    }
}

/// This process's CPU time and resident memory, from /proc/self/stat (utime, stime, rss).
public struct ProcessStats: Sendable {
    public var cpuSeconds: Double = 0
    public var residentBytes: Int = 0

    public static func read() -> ProcessStats {
        var s = ProcessStats()
        guard let text = try? FileSystem.read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return s }
        // Fields after the command's closing parenthesis start at field 3 (state).
        let f = text[text.index(after: close)...].split(separator: " ")
        guard f.count > 21, let utime = Double(f[11]), let stime = Double(f[12]), let rss = Int(f[21]) else { return s }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        s.cpuSeconds = ticks > 0 ? (utime + stime) / ticks : 0
        s.residentBytes = rss * Int(sysconf(Int32(_SC_PAGESIZE)))
        return s
    }
}
