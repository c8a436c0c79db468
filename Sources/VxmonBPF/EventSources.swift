import CLibbpf
import Glibc

/// Receives what a live source reads. Callbacks run synchronously on the polling thread, inside
/// libbpf's poll/consume calls; `bytes` points into the kernel-shared buffer and is valid only
/// during the call.
protocol SourceDelegate: AnyObject {
    /// `kernelTime`: the perf sample's timestamp (perf clock, ns), 0 when the source has none.
    func sourceSample(node: Int, cpu: Int, kernelTime: UInt64, bytes: UnsafeRawBufferPointer)
    func sourceLost(node: Int, cpu: Int, count: UInt64)
}

/// The context pointer libbpf hands back to the C callbacks: which node a buffer belongs to.
final class SourceContext {
    unowned let delegate: any SourceDelegate
    let node: Int

    init(delegate: any SourceDelegate, node: Int) {
        self.delegate = delegate
        self.node = node
    }
}

/// A libbpf perf buffer over a PERF_EVENT_ARRAY, created with `perf_buffer__new_raw` so that the
/// kernel wakes the reader every `wakeupEvents` samples instead of every sample (per-event wakeups
/// are the dominant cost on small VMs); the owner consumes periodically so that nothing waits in a
/// quiet buffer. `deinit` calls `perf_buffer__free`.
final class PerfBufferSource {
    private var buffer: OpaquePointer?
    private let context: SourceContext

    /// Calls `perf_buffer__new_raw` (PERF_TYPE_SOFTWARE / PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW,
    /// sample_period 1, wakeup_events `wakeupEvents`) with `pagesPerCPU` data pages on every CPU.
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
        guard let pb = vxmon_shim_perf_buffer_new(mapFD, pagesPerCPU, wakeupEvents, onEvent, ctx) else {
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
}

/// A libbpf ring buffer over a BPF_MAP_TYPE_RINGBUF. The datapath batches wakeups itself
/// (`vxmon_config.ring_wakeup_bytes`), so the owner consumes periodically as well. Ring records carry
/// no CPU; they are reported as CPU 0. `deinit` calls `ring_buffer__free`.
final class RingBufferSource {
    private var ring: OpaquePointer?
    private let context: SourceContext

    /// Calls `ring_buffer__new`.
    init(mapFD: Int32, context: SourceContext) throws(LibbpfError) {
        self.context = context
        let onSample: ring_buffer_sample_fn = { ctx, data, size in
            guard let ctx, let data else { return 0 }
            let context = Unmanaged<SourceContext>.fromOpaque(ctx).takeUnretainedValue()
            context.delegate.sourceSample(
                node: context.node, cpu: 0, kernelTime: 0, bytes: UnsafeRawBufferPointer(start: data, count: Int(size)))
            return 0
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
    func consume() -> Int32 { ring.map { ring_buffer__consume($0) } ?? 0 }
}
