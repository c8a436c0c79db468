import CLibbpf
import CVxmonABI
import Glibc
import VxmonCore
import VxmonLive

/// Receives what a live source reads. Callbacks run synchronously on the polling thread, inside
/// libbpf's poll/consume calls; `bytes` points into the kernel-shared buffer and is valid only
/// during the call.
protocol SourceDelegate: AnyObject {
    /// `kernelTime`: when the datapath wrote the event, CLOCK_BOOTTIME in ns (the ring header's
    /// `boot_ns`, the perf sample's PERF_SAMPLE_TIME); 0 when the source has none.
    func sourceSample(node: Int, cpu: Int, kernelTime: UInt64, bytes: UnsafeRawBufferPointer)
    func sourceLost(node: Int, cpu: Int, count: UInt64)
    /// A record that cannot be given to a node (malformed ring header, or a node not read).
    func sourceUnattributed(cpu: Int, reason: String)
}

/// The context pointer libbpf hands back to the C callbacks: which node a buffer belongs to.
final class SourceContext {
    /// Unowned(unsafe): the session owns its sources and closes them before it goes; a checked
    /// unowned reference cost a reference-count operation per event.
    unowned(unsafe) let delegate: any SourceDelegate
    let node: Int

    init(delegate: any SourceDelegate, node: Int) {
        self.delegate = delegate
        self.node = node
    }
}

/// A libbpf perf buffer over a PERF_EVENT_ARRAY, created with `perf_buffer__new_raw` so that the
/// kernel wakes the reader rarely instead of on every sample (a wakeup is an inter-processor
/// interrupt, a VM exit here, and per-event wakeups are the dominant cost on small VMs): by default
/// when a quarter of a CPU's ring is pending, or every `wakeupEvents` samples. The owner drains
/// every ring on a short timer, so nothing waits in a quiet buffer. `deinit` calls `perf_buffer__free`.
final class PerfBufferSource: PollSource {
    private var buffer: OpaquePointer?
    private let context: SourceContext

    /// Calls `perf_buffer__new_raw` (PERF_TYPE_SOFTWARE / PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_TIME
    /// on CLOCK_BOOTTIME and PERF_SAMPLE_RAW, sample_period 1; wakeup_events `wakeupEvents`, or a
    /// watermark of a quarter of the ring when it is 0) with `pagesPerCPU` data pages on every CPU.
    init(mapFD: Int32, pagesPerCPU: Int, wakeupEvents: UInt32, context: SourceContext) throws(LibbpfError) {
        self.context = context
        let onEvent: perf_buffer_event_fn = { ctx, cpu, header in
            guard let ctx, let header else { return LIBBPF_PERF_EVENT_CONT }
            let context = Unmanaged<SourceContext>.fromOpaque(ctx).takeUnretainedValue()
            let record = UnsafeRawPointer(header)
            let size = Int(header.pointee.size)
            switch header.pointee.type {
            case PERF_RECORD_SAMPLE.rawValue:
                // perf_event_header (8) + u64 time (PERF_SAMPLE_TIME) + u32 raw size + raw bytes; the
                // kernel guarantees the record holds them, but check against its own size anyway.
                guard size >= 20 else { break }
                let time = record.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                let length = Int(record.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
                guard length <= size - 20 else { break }
                context.delegate.sourceSample(
                    node: context.node, cpu: Int(cpu), kernelTime: time,
                    bytes: UnsafeRawBufferPointer(start: record + 20, count: length))
            case PERF_RECORD_LOST.rawValue:
                // perf_event_header (8) + u64 id + u64 lost.
                guard size >= 24 else { break }
                context.delegate.sourceLost(
                    node: context.node, cpu: Int(cpu), count: record.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            default:
                break
            }
            return LIBBPF_PERF_EVENT_CONT
        }
        let ctx = Unmanaged.passUnretained(context).toOpaque()
        let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        let watermark = UInt32(clamping: pagesPerCPU * pageSize / 4)
        guard let pb = vxmon_shim_perf_buffer_new(mapFD, pagesPerCPU, wakeupEvents, watermark, onEvent, ctx) else {
            throw LibbpfError.errno("perf_buffer__new_raw")
        }
        buffer = pb
    }

    deinit { close() }

    /// Frees the buffer (idempotent). Calls `perf_buffer__free`.
    func close() {
        if let buffer { perf_buffer__free(buffer) }
        buffer = nil
    }

    /// The epoll fd covering every CPU's ring. Calls `perf_buffer__epoll_fd`.
    var epollFD: Int32 { buffer.map { perf_buffer__epoll_fd($0) } ?? -1 }

    /// Reads every CPU ring, signalled or not. Calls `perf_buffer__consume`.
    func consume() -> Int32 { buffer.map { perf_buffer__consume($0) } ?? 0 }

    var pollFD: Int32 { epollFD }

    /// Consume, not perf_buffer__poll: checking the nested epoll fd already ran perf_poll(), which
    /// clears the CPU ring's readiness flag, so an inner epoll_wait would report nothing and the ring
    /// would only be read at the next tick (measured: full rings and lost samples at 100k events/s).
    func readReady() -> Bool {
        _ = consume()
        return false
    }
}

/// A libbpf ring buffer over the lab's BPF_MAP_TYPE_RINGBUF, which every node writes to: each
/// record starts with a `vxmon_ring_header` naming the node (its index in the lab), the CPU and the
/// time (CLOCK_BOOTTIME), and the records of all nodes come out in the order they were written. The
/// datapath wakes the reader only once per `vxmon_config.ring_wakeup_bytes` written (per CPU and
/// node), so the owner drains it on a short timer as well. `deinit` calls `ring_buffer__free`.
final class RingBufferSource: PollSource {
    /// The context libbpf hands back to the callback: which session node each lab node index is.
    final class Context {
        /// Unowned(unsafe): the session owns its sources and closes them before it goes; a checked
        /// unowned reference cost a reference-count operation per event.
        unowned(unsafe) let delegate: any SourceDelegate
        /// Lab node index -> session node, nil for nodes the session does not read.
        let sessionNodes: [Int?]
        /// Records taken in the current `consume()`; it stops at `RingBufferSource.budget`.
        var taken = 0

        init(delegate: any SourceDelegate, sessionNodes: [Int?]) {
            self.delegate = delegate
            self.sessionNodes = sessionNodes
        }

        /// Delivers one record; returns -1 (stop consuming) once this call's budget is used up.
        func record(_ data: UnsafeRawPointer, _ size: Int) -> Int32 {
            taken &+= 1
            deliver(data, size)
            return taken >= RingBufferSource.budget ? -1 : 0
        }

        private func deliver(_ data: UnsafeRawPointer, _ size: Int) {
            let headerSize = MemoryLayout<vxmon_ring_header>.size
            guard size >= headerSize else {
                delegate.sourceUnattributed(cpu: 0, reason: "a \(size)-byte ring record, shorter than its header")
                return
            }
            // The imported C struct, so the layout is bpf/include/vxmon/lab.h's by construction.
            let header = data.loadUnaligned(as: vxmon_ring_header.self)
            let node = Int(header.node)
            let cpu = Int(header.cpu)
            guard node < sessionNodes.count, let sessionNode = sessionNodes[node] else {
                delegate.sourceUnattributed(cpu: cpu, reason: "a ring record of node index \(node), not read")
                return
            }
            let event = UnsafeRawBufferPointer(start: data + headerSize, count: size - headerSize)
            delegate.sourceSample(
                node: sessionNode, cpu: cpu, kernelTime: header.boot_ns,
                bytes: UnsafeRawBufferPointer(rebasing: event[..<Self.used(event)]))
        }

        /// The bytes of a ring record the datapath wrote: records are reserved at fixed sizes, and
        /// what follows the notify's len_cap packet bytes is whatever an earlier record left there
        /// (possibly another node's packet), which must not reach a sink or a recording. Read with
        /// the decoder's layout table; anything but a trace or drop of a known version (or too
        /// short) is passed whole, for the decoder to judge.
        static func used(_ event: UnsafeRawBufferPointer) -> Int {
            guard event.count > EventLayout.Capture.version, let type = event.first else { return event.count }
            let version = event[EventLayout.Capture.version]
            let header: Int?
            switch Int32(type) {
            case VXMON_NOTIFY_TRACE: header = EventLayout.Trace.headerLength(version: version)
            case VXMON_NOTIFY_DROP: header = EventLayout.Drop.headerLength(version: version)
            default: header = nil
            }
            guard let header, event.count >= header else { return event.count }
            let captured = UInt16(
                littleEndian: event.loadUnaligned(fromByteOffset: EventLayout.Capture.lengthCaptured, as: UInt16.self))
            return min(event.count, header + Int(captured))
        }
    }

    private var ring: OpaquePointer?
    private let context: Context

    /// Calls `ring_buffer__new`.
    init(mapFD: Int32, context: Context) throws(LibbpfError) {
        self.context = context
        let onSample: ring_buffer_sample_fn = { ctx, data, size in
            guard let ctx, let data else { return 0 }
            // The source keeps its context alive; borrowing it spares a retain/release per record.
            return Unmanaged<Context>.fromOpaque(ctx)._withUnsafeGuaranteedRef {
                $0.record(UnsafeRawPointer(data), Int(size))
            }
        }
        let ctx = Unmanaged.passUnretained(context).toOpaque()
        guard let rb = ring_buffer__new(mapFD, onSample, ctx, nil) else {
            throw LibbpfError.errno("ring_buffer__new")
        }
        ring = rb
    }

    deinit { close() }

    /// Frees the ring (idempotent). Calls `ring_buffer__free`.
    func close() {
        if let ring { ring_buffer__free(ring) }
        ring = nil
    }

    /// Calls `ring_buffer__epoll_fd`.
    var epollFD: Int32 { ring.map { ring_buffer__epoll_fd($0) } ?? -1 }

    /// Reads everything available. Calls `ring_buffer__consume`.
    ///
    /// libbpf 1.1's ring_buffer__consume keeps reading while the producer keeps writing, so a reader
    /// slower than the datapath would never return (no output flush, no signal handling). The
    /// callback stops it after `budget` records; the result then says more is pending.
    var pollFD: Int32 { epollFD }

    /// One budgeted consume; true when the ring still holds records.
    func readReady() -> Bool { consume().more }

    func consume() -> (records: Int, more: Bool) {
        guard let ring else { return (0, false) }
        context.taken = 0
        let rc = ring_buffer__consume(ring)
        return (context.taken, rc < 0 && context.taken >= RingBufferSource.budget)
    }

    /// Records one `consume()` delivers at most (about 15 ms of rendering at full speed).
    static let budget = 16384
}
