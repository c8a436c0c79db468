import CVxmonSystem
import Glibc
import Synchronization

/// Something a poll loop reads when its descriptor is ready, and at every tick: a perf buffer, a ring
/// buffer, a socket.
public protocol PollSource: AnyObject {
    /// The descriptor epoll watches for readability.
    var pollFD: Int32 { get }
    /// Reads what is ready. Returns true when more is pending (a budget cut the read short): the loop
    /// then comes straight back instead of sleeping.
    func readReady() -> Bool
}

/// What a poll loop's owner does around the reads.
public protocol PollLoopDelegate: AnyObject {
    /// Before the sources are read in a round (e.g. note the time).
    func roundStarting()
    /// After the sources were read in a round (e.g. hand staged records on).
    func roundFinished()
    /// Every tick, after every source was read.
    func tick()
    /// On the housekeeping cadence; an `End` stops the loop (`.outputClosed` after the round).
    func housekeeping() -> PollLoop.End?
    /// On the slow cadence; an `End` stops the loop.
    func slowCheck() -> PollLoop.End?
}

/// How often a poll loop does what.
public struct PollSchedule: Sendable {
    /// Every source is read this often, whether or not it signalled.
    public var tickMilliseconds: Int32 = 10
    /// `housekeeping` runs this often (counters, flushing the output).
    public var housekeepingMilliseconds: Int32 = 100
    /// `everySecond` runs this often (slow checks, such as the lab still being there).
    public var slowCheckMilliseconds: Int32 = 1000
    /// Stop by itself after this many seconds.
    public var duration: Double?
    /// A descriptor whose error or hangup ends the loop (stdout, for `vxmon | head`).
    public var watchFD: Int32?

    public init() {}
}

/// The read loop of a live session, apart from what is read: epoll over the sources' descriptors,
/// a tick that reads every source, housekeeping and slow checks on their own cadences, a deadline, the
/// output watch and a stop flag (SIGINT/SIGTERM or `requestStop()` from any thread).
public final class PollLoop: @unchecked Sendable {
    public let schedule: PollSchedule
    private let sources: [any PollSource]
    private let stopFlag = Atomic<Bool>(false)

    public init(sources: [any PollSource], schedule: PollSchedule) {
        self.sources = sources
        self.schedule = schedule
    }

    /// Asks `run` to return after its current round (any thread).
    public func requestStop() { stopFlag.store(true, ordering: .relaxed) }

    /// Why a loop ended.
    public enum End: Sendable, Equatable, CustomStringConvertible {
        case stopped
        case outputClosed
        case durationReached
        /// A callback said so, with its reason.
        case finished(String)

        public var description: String {
            switch self {
            case .stopped: "stopped"
            case .outputClosed: "output closed"
            case .durationReached: "duration reached"
            case .finished(let why): why
            }
        }
    }

    /// Polls until stopped, calling `delegate` around the reads and on its cadences. Blocks: call it
    /// on a dedicated thread.
    public func run(_ delegate: any PollLoopDelegate) throws -> End {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epoll < 0 { throw SystemError.errno("epoll_create1") }
        defer { close(epoll) }
        for (i, source) in sources.enumerated() {
            try SystemError.check(
                vxmon_shim_epoll_add(epoll, source.pollFD, UInt32(EPOLLIN.rawValue), UInt64(i)), "epoll_ctl")
        }
        let watchTag = UInt64.max
        if let fd = schedule.watchFD, Self.isPipeOrSocket(fd) {
            // No events requested: epoll still reports EPOLLERR when the pipe's reader is gone.
            _ = vxmon_shim_epoll_add(epoll, fd, 0, watchTag)
        }
        let start = monotonicNanoseconds()
        let tick = UInt64(max(schedule.tickMilliseconds, 1)) * 1_000_000
        let housekeepingPeriod = UInt64(max(schedule.housekeepingMilliseconds, 1)) * 1_000_000
        let slowPeriod = UInt64(max(schedule.slowCheckMilliseconds, 1)) * 1_000_000
        var lastTick = start
        var lastHousekeeping = start
        var lastSlow = start
        let deadline = schedule.duration.map { start + UInt64(max($0, 0) * 1e9) }
        var tags = [UInt64](repeating: 0, count: 32)
        var events = [UInt32](repeating: 0, count: 32)
        var backlog = false
        while true {
            if stopRequested.load(ordering: .relaxed) || stopFlag.load(ordering: .relaxed) { return .stopped }
            // A read cut short by its budget: come straight back for the rest.
            let hadBacklog = backlog
            backlog = false
            var timeout = hadBacklog ? 0 : schedule.tickMilliseconds
            if let deadline {
                let mono = monotonicNanoseconds()
                let left = deadline > mono ? deadline - mono : 0
                timeout = min(timeout, Int32(left / 1_000_000) + 1)
            }
            let n = vxmon_shim_epoll_wait(epoll, &tags, &events, 32, timeout)
            if n < 0 && n != -EINTR { throw SystemError(function: "epoll_wait", code: -n) }
            delegate.roundStarting()
            var outputGone = false
            var ready = Set<Int>()
            for i in 0..<max(Int(n), 0) {
                if tags[i] == watchTag {
                    outputGone = true
                } else if Int(tags[i]) < sources.count {
                    ready.insert(Int(tags[i]))
                    if sources[Int(tags[i])].readReady() { backlog = true }
                }
            }
            if hadBacklog {
                // The rest of what a budgeted read left: the source may never signal again for it.
                for (i, source) in sources.enumerated() where !ready.contains(i) && source.readReady() { backlog = true }
            }
            delegate.roundFinished()
            let mono = monotonicNanoseconds()
            if mono - lastTick >= tick {
                lastTick = mono
                for source in sources where source.readReady() { backlog = true }
                delegate.roundFinished()
                if mono - lastHousekeeping >= housekeepingPeriod {
                    lastHousekeeping = mono
                    if let end = delegate.housekeeping() {
                        if end == .outputClosed { outputGone = true } else { return end }
                    }
                }
                delegate.tick()
                if mono - lastSlow >= slowPeriod {
                    lastSlow = mono
                    if let end = delegate.slowCheck() { return end }
                }
            }
            if outputGone { return .outputClosed }
            if let deadline, mono >= deadline { return .durationReached }
        }
    }

    static func isPipeOrSocket(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let type = st.st_mode & S_IFMT
        return type == S_IFIFO || type == S_IFSOCK
    }
}
