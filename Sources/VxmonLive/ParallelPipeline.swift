import Glibc
import VxmonCore

/// Replays a recording on several cores while keeping the output in record order.
///
/// The reading thread copies records into batches (a few thousand events each); worker threads
/// decode and render whole batches with their own `EventPipeline`; the reading thread writes finished
/// batches in sequence. Interface-name records act as barriers (every batch before them is finished
/// before the name applies), so output is byte-identical to a single-threaded replay.
public final class ParallelPipeline: RecordConsumer, @unchecked Sendable {
    /// One event or lost record of a batch, pointing into the batch's byte arena.
    struct Entry {
        var isLost: Bool
        var offset: Int
        var length: Int
        var cpu: Int
        var time: UInt64
        var index: Int
        var fileOffset: Int
        var lostCount: UInt64
        var node: Int
    }

    final class Batch: @unchecked Sendable {
        var arena: [UInt8] = []
        var entries: [Entry] = []
        var nodes: [String?] = []
        let out = OutputBuffer(capacity: 1 << 18)
        var diagnostics: [String] = []
        var stats = PipelineStats()
        var sequence = 0
        var done = false

        func reset() {
            arena.removeAll(keepingCapacity: true)
            entries.removeAll(keepingCapacity: true)
            nodes.removeAll(keepingCapacity: true)
            out.removeAll()
            diagnostics.removeAll()
            stats = PipelineStats()
            done = false
        }
    }

    private let workers: [EventPipeline]
    private let output: ByteOutput
    private let flushEachBatch: Bool
    private let diagnostics: (String) -> Void
    private let batchEvents: Int
    public let names: InterfaceNames
    public private(set) var stats = PipelineStats()
    public private(set) var outputClosed = false
    /// The errno of a write that failed for another reason than EPIPE (0: none).
    public private(set) var outputError: Int32 = 0
    public var shouldStop: Bool { outputClosed || outputError != 0 }

    // pthread objects must not move: they live in their own allocations.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let workReady = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let batchDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [Batch] = []  // submitted, not yet taken by a worker
    private var inFlight: [Batch] = []  // submitted, in order, not yet written
    private var free: [Batch] = []
    private var current: Batch
    private var nextSequence = 0
    private var shuttingDown = false
    private var threads: [pthread_t] = []
    /// Worker threads that could not be created (the work then runs on fewer, or on the caller's).
    public private(set) var threadFailures = 0
    /// The error of the last failed thread creation (0 if none failed).
    public private(set) var threadError: Int32 = 0
    private var node: String?
    private var nodeIndex = -1

    /// `makePipeline` builds one pipeline per worker; each must render into its own buffer (no output)
    /// and share `names`.
    public init(
        workers count: Int, output: ByteOutput, flushEachBatch: Bool = false, batchEvents: Int = 1024,
        names: InterfaceNames, diagnostics: @escaping (String) -> Void = EventPipeline.diagnostic,
        makePipeline: (InterfaceNames) -> EventPipeline
    ) {
        self.output = output
        self.flushEachBatch = flushEachBatch
        self.diagnostics = diagnostics
        self.batchEvents = max(batchEvents, 1)
        self.names = names
        workers = (0..<max(count, 1)).map { _ in makePipeline(names) }
        current = Batch()
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workReady, nil)
        pthread_cond_init(batchDone, nil)
        for worker in workers {
            let context = Unmanaged.passRetained(WorkerContext(owner: self, pipeline: worker)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.owner.workerLoop(ctx.pipeline)
                return nil
            }, context)
            if rc == 0 {
                threads.append(thread)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                threadFailures += 1
                threadError = rc
            }
        }
    }

    final class WorkerContext: @unchecked Sendable {
        let owner: ParallelPipeline
        let pipeline: EventPipeline
        init(owner: ParallelPipeline, pipeline: EventPipeline) {
            self.owner = owner
            self.pipeline = pipeline
        }
    }

    private func workerLoop(_ pipeline: EventPipeline) {
        while true {
            pthread_mutex_lock(mutex)
            while pending.isEmpty && !shuttingDown { pthread_cond_wait(workReady, mutex) }
            if pending.isEmpty {
                pthread_mutex_unlock(mutex)
                return
            }
            let batch = pending.removeFirst()
            pthread_mutex_unlock(mutex)
            render(batch, with: pipeline)
            pthread_mutex_lock(mutex)
            batch.done = true
            pthread_cond_broadcast(batchDone)
            pthread_mutex_unlock(mutex)
        }
    }

    private func render(_ batch: Batch, with pipeline: EventPipeline) {
        pipeline.stats = PipelineStats()
        pipeline.diagnostics = { batch.diagnostics.append($0) }
        batch.out.removeAll()
        pipeline.out = batch.out
        batch.arena.withUnsafeBytes { arena in
            for e in batch.entries {
                pipeline.node = batch.nodes[e.node]
                if e.isLost {
                    pipeline.lost(cpu: e.cpu, count: e.lostCount, timeNanoseconds: e.time)
                } else {
                    let body = UnsafeRawBufferPointer(rebasing: arena[e.offset..<(e.offset + e.length)])
                    pipeline.sample(body.bytes, cpu: e.cpu, timeNanoseconds: e.time, index: e.index, offset: e.fileOffset)
                }
            }
        }
        batch.stats = pipeline.stats
    }

    // MARK: RecordConsumer (reading thread)

    private func currentNodeIndex() -> Int {
        if nodeIndex < 0 || nodeIndex >= current.nodes.count || current.nodes[nodeIndex] != node {
            current.nodes.append(node)
            nodeIndex = current.nodes.count - 1
        }
        return nodeIndex
    }

    public func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        let start = current.arena.count
        body.withUnsafeBytes { current.arena.append(contentsOf: $0) }
        current.entries.append(
            Entry(
                isLost: false, offset: start, length: body.byteCount, cpu: cpu, time: timeNanoseconds, index: index,
                fileOffset: offset, lostCount: 0, node: currentNodeIndex()))
        if current.entries.count >= batchEvents { submit() }
    }

    public func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
        current.entries.append(
            Entry(
                isLost: true, offset: 0, length: 0, cpu: cpu, time: timeNanoseconds, index: 0, fileOffset: 0,
                lostCount: count, node: currentNodeIndex()))
        if current.entries.count >= batchEvents { submit() }
    }

    public func interfaceName(ifindex: UInt32, name: String) {
        // Names apply from here on: finish every earlier batch before changing the shared table.
        drain()
        names.set(ifindex, name, node: node)
    }

    public func metadata(key: String, value: String) {
        if let named = Vxrec.node(fromMetadata: key, value) { node = named }
        if PodInfo(metadataKey: key, value: value) != nil {
            // Pods apply from here on, in every worker's filter and sinks.
            drain()
            for worker in workers { worker.metadata(key: key, value: value) }
        }
    }

    /// The pods learned from the recording's metadata.
    public var pods: PodDirectory { workers.first?.pods ?? PodDirectory() }

    /// Every worker's `--summary` counters added up (nil when not counting). Call after `finish()`.
    public func mergedCounters() -> FlowCounters? {
        guard workers.first?.counters != nil else { return nil }
        let total = FlowCounters()
        for worker in workers { if let c = worker.counters { total.merge(c) } }
        return total
    }

    public func malformedRecord(index: Int, offset: Int, reason: String) {
        // Keep the diagnostic in order with the events around it.
        drain()
        stats.malformedRecords += 1
        diagnostics("vxmon: record \(index) (byte offset \(offset)): \(reason); record skipped")
    }

    private func submit() {
        guard !current.entries.isEmpty else { return }
        let batch = current
        batch.sequence = nextSequence
        nextSequence += 1
        if threads.isEmpty {
            // No worker thread could be created: render on this thread, in order, rather than wait
            // for workers that do not exist.
            render(batch, with: workers[0])
            batch.done = true
            inFlight.append(batch)
            writeOldest()
            current = free.popLast() ?? Batch()
            current.reset()
            nodeIndex = -1
            return
        }
        pthread_mutex_lock(mutex)
        pending.append(batch)
        inFlight.append(batch)
        pthread_cond_signal(workReady)
        pthread_mutex_unlock(mutex)
        // Bound memory: at most two batches per worker in flight.
        while inFlight.count > workers.count * 2 { writeOldest() }
        current = free.popLast() ?? Batch()
        current.reset()
        nodeIndex = -1
    }

    /// Waits for the oldest in-flight batch and writes it.
    private func writeOldest() {
        pthread_mutex_lock(mutex)
        let batch = inFlight.removeFirst()
        while !batch.done { pthread_cond_wait(batchDone, mutex) }
        pthread_mutex_unlock(mutex)
        for line in batch.diagnostics { diagnostics(line) }
        stats.add(batch.stats)
        if !shouldStop {
            switch batch.out.flush(to: output) {
            case .ok: break
            case .closed: outputClosed = true
            case .failed(let e): outputError = e
            }
        }
        free.append(batch)
    }

    /// Renders and writes everything submitted so far (and the partial batch).
    public func drain() {
        submit()
        while !inFlight.isEmpty { writeOldest() }
    }

    /// Drains, stops the workers and joins them. Call once, at the end.
    public func finish() {
        drain()
        pthread_mutex_lock(mutex)
        shuttingDown = true
        pthread_cond_broadcast(workReady)
        pthread_mutex_unlock(mutex)
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    deinit {
        if !threads.isEmpty { finish() }
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(workReady)
        pthread_cond_destroy(batchDone)
        mutex.deallocate()
        workReady.deallocate()
        batchDone.deallocate()
    }

    /// Same wording as `EventPipeline.summaryLine`.
    public func summaryLine() -> String { stats.summaryLine }
}
