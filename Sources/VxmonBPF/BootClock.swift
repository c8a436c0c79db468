import Glibc

/// Turns the datapath's event times into wall-clock time.
///
/// Both buffers date an event with CLOCK_BOOTTIME, in nanoseconds, read in the kernel when the event
/// is written: the ring's `vxmon_ring_header.boot_ns` (bpf_ktime_get_boot_ns()), the perf samples'
/// PERF_SAMPLE_TIME (their perf events are opened with use_clockid = CLOCK_BOOTTIME). Wall-clock time
/// is that plus CLOCK_REALTIME - CLOCK_BOOTTIME, which user space samples: CLOCK_REALTIME read just
/// before and just after CLOCK_BOOTTIME, several times, keeping the narrowest bracket. The BOOTTIME
/// read happened somewhere inside it, so the offset taken at its midpoint is right to within half
/// its width (`bracket`, typically well under a microsecond with the vDSO).
///
/// The offset changes only when the wall clock is stepped (clock_settime, an NTP step, a leap
/// second): NTP's slewing changes CLOCK_BOOTTIME's rate exactly as much as CLOCK_REALTIME's, and a
/// suspend advances both (CLOCK_MONOTONIC would stop, and the offset would jump). The owner
/// re-samples it periodically so that steps are followed.
///
/// Not handled: a reader inside a time namespace with a boottime offset (unshare --time) reads a
/// CLOCK_BOOTTIME shifted by that offset, the kernel's timestamps are not.
struct BootClock {
    /// CLOCK_REALTIME - CLOCK_BOOTTIME at the last sample, ns.
    private(set) var offset: Int64 = 0
    /// The width of the bracket the offset was taken from, ns: the offset is within half of it.
    private(set) var bracket: UInt64 = 0

    /// Samples the offset once.
    init(pairs: Int = BootClock.pairs) { sample(pairs: pairs) }

    /// Reads `pairs` brackets and keeps the narrowest. A bracket whose CLOCK_REALTIME went backwards
    /// (the clock was stepped in between) is skipped; if all are, the previous offset stays.
    mutating func sample(pairs: Int = BootClock.pairs) {
        var best = UInt64.max
        var bestOffset: Int64 = 0
        for _ in 0..<max(pairs, 1) {
            let before = Self.read(CLOCK_REALTIME)
            let boot = Self.read(CLOCK_BOOTTIME)
            let after = Self.read(CLOCK_REALTIME)
            guard after >= before, after - before < best else { continue }
            best = after - before
            bestOffset = Int64(bitPattern: before &+ best / 2) &- Int64(bitPattern: boot)
        }
        guard best != .max else { return }
        offset = bestOffset
        bracket = best
    }

    /// The Unix-epoch time, ns, of a CLOCK_BOOTTIME reading.
    @inline(__always)
    func wallClock(_ bootNanoseconds: UInt64) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: bootNanoseconds) &+ offset)
    }

    /// Brackets read per sample: the first pays for cache misses, a preemption can widen any one.
    static let pairs = 8

    /// clock_gettime in nanoseconds.
    @inline(__always)
    static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
