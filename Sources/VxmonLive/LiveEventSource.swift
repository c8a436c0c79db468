/// What the live commands read from: the lab's buffers directly (`LiveSession`), or a stream from an
/// agent's socket (`StreamSession`). Either hands the same calls to a `LiveSink`.
public protocol LiveEventSource: AnyObject {
    /// Delivers the interface names known at start (before `run`).
    func announceInterfaces()
    /// Reads until stopped; blocks (call it on a dedicated thread).
    func run() throws -> LiveStats
    /// Asks `run()` to return (any thread).
    func requestStop()
    /// Frees what the source holds (after `run()` has returned).
    func close()
}

/// Counters of a finished (or running) session.
public struct LiveStats: Sendable {
    /// Samples read from the buffers.
    public var samples = 0
    /// Samples the kernel reported lost (perf PERF_RECORD_LOST, ring reserve failures).
    public var lost: UInt64 = 0
    /// bpf_perf_event_output failures counted by the datapath while the session was attached (a full
    /// ring shows up both here and in `lost`; a CPU without a reader only here).
    public var perfOutputFailures: UInt64 = 0
    /// Ring records that named no node this session reads (or were too short to name one):
    /// reported on stderr, not rendered.
    public var unattributed: UInt64 = 0
    /// Why the session ended.
    public var endReason = ""
    /// The widest clock_gettime bracket any wall-clock offset of this session was taken from, ns:
    /// event times were converted with an offset within half of it (see VxmonBPF's `BootClock`).
    public var clockBracket: UInt64 = 0
    /// Set when the session ended because its source failed (an agent that went away).
    public var failure: String?
    /// Times a stream session reconnected to its agent.
    public var reconnects = 0
    /// Records of a stream that could not be used (reported, skipped).
    public var malformed = 0

    public init() {}
}
