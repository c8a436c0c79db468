import Glibc
import Synchronization
import VxmonCore

/// The process's budget of diagnostic lines on stderr: a burst of `burst` lines, then `perSecond`
/// lines a second (a token bucket). A line over the budget is counted, not written; when lines may
/// be written again, one line says how many were not, and `suppressed` gives the total for a
/// summary. Per process, not per session or per pipeline: a peer that reconnects, a replay's
/// parallel workers or a server's many clients all draw on the same budget, so stderr stays bounded
/// whatever the input does (a hostile monitor socket made 490 MB of stderr in 10 s before).
///
/// Summaries, usage errors and start-up lines are written with `EventPipeline.standardError` and are
/// never held back; per-event and per-peer diagnostics go through `EventPipeline.diagnostic`.
public final class DiagnosticBudget: Sendable {
    public static let burst = 1_000
    public static let perSecond = 100

    /// The process's budget.
    public static let process = DiagnosticBudget(burst: burst, perSecond: perSecond)

    private struct State {
        var tokens: Double
        var last: UInt64
        var suppressed: UInt64 = 0
        /// Held back since the last line written (said when writing resumes).
        var pending: UInt64 = 0
    }
    private let state: Mutex<State>
    private let burstLines: Double
    private let rate: Double
    private let clock: @Sendable () -> UInt64

    package init(burst: Int, perSecond: Int, clock: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        burstLines = Double(burst)
        rate = Double(perSecond)
        self.clock = clock
        state = Mutex(State(tokens: Double(burst), last: clock()))
    }

    /// Lines not written so far.
    public var suppressed: UInt64 { state.withLock { $0.suppressed } }

    /// Whether a line may be written now; if it may, also how many were held back just before it.
    /// Counts the line as held back when it may not.
    public func take() -> (allowed: Bool, heldBack: UInt64) {
        state.withLock { s in
            // Read under the lock, and never backwards: a time older than the last one refills nothing.
            let now = clock()
            let elapsed = now > s.last ? Double(now - s.last) / 1e9 : 0
            s.last = max(s.last, now)
            s.tokens = min(burstLines, s.tokens + elapsed * rate)
            guard s.tokens >= 1 else {
                s.suppressed &+= 1
                s.pending &+= 1
                return (false, 0)
            }
            s.tokens -= 1
            let held = s.pending
            s.pending = 0
            return (true, held)
        }
    }

    /// Writes `message` through `write` if the budget allows, preceded by a count of what was held back.
    public func write(_ message: String, _ write: (String) -> Void) {
        let (allowed, held) = take()
        guard allowed else { return }
        if held > 0 {
            write(
                "vxmon: \(held) diagnostic lines not shown (stderr is limited to \(Int(burstLines)) lines, "
                    + "then \(Int(rate)) a second)")
        }
        write(message)
    }
}

extension EventPipeline {
    /// A diagnostic line from outside input (an undecodable event, a peer's malformed stream, a
    /// client's hang-up): written to stderr within the process's `DiagnosticBudget`.
    public static func diagnostic(_ message: String) {
        DiagnosticBudget.process.write(message, standardError)
    }
}
