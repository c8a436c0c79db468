import Synchronization
import VxmonCore

/// Reads several stream sessions at once into one sink: a Cilium agent's monitor socket per node of a
/// real cluster. Each session runs on its own thread and keeps its own connection (reconnecting as a
/// lone session does); node `n` of session `i` reaches the sink as node `base(i) + n`, where `base(i)`
/// counts the nodes of the sessions before it, so the sink's node names are the sessions' node names in
/// order. The sink is not thread-safe: every call to it is made under one lock, so it sees one call at
/// a time, each session's calls in its stream's order.
///
/// The first session to end ends the others (its time is up, the output closed, the count reached, its
/// agent failed); the stats add up the sessions' counts, with the end reason and failure of the first.
public final class MergedSource: LiveEventSource, @unchecked Sendable {
    private let sessions: [StreamSession]
    private let shared: Shared

    /// One session per element of `sources` (each a stream whose nodes are its `nodeNames`).
    public init(sources: [StreamSession.Options], sink: any LiveSink) {
        let shared = Shared(sink)
        self.shared = shared
        var base = 0
        var sessions: [StreamSession] = []
        for options in sources {
            sessions.append(StreamSession(options: options, sink: NodeSink(shared: shared, base: base)))
            base += options.nodeNames.count
        }
        self.sessions = sessions
    }

    public func announceInterfaces() {
        for session in sessions { session.announceInterfaces() }
    }

    public func requestStop() {
        for session in sessions { session.requestStop() }
    }

    public func close() {
        for session in sessions { session.close() }
    }

    /// Runs every session on its own thread until the first one ends, then stops the others and waits
    /// for them. Rethrows what a session threw (e.g. a socket this user may not open), once the others
    /// have stopped.
    public func run() throws -> LiveStats {
        guard sessions.count > 1 else { return try sessions.first?.run() ?? LiveStats() }
        let outcomes = Outcomes(count: sessions.count)
        var threads: [BackgroundThread] = []
        var startFailure: (any Error)?
        for (i, session) in sessions.enumerated() {
            do {
                threads.append(
                    try BackgroundThread { [self] in
                        if outcomes.finish(i, Result { try session.run() }) { requestStop() }
                    })
            } catch {
                startFailure = error
                requestStop()
                break
            }
        }
        for thread in threads { try? thread.join() }
        if let startFailure { throw startFailure }
        return try outcomes.merged()
    }

    /// How the sessions ended, as their threads report it.
    private final class Outcomes: Sendable {
        private struct State {
            var results: [Result<LiveStats, any Error>?]
            /// The session that ended first.
            var first: Int?
        }
        private let state: Mutex<State>

        init(count: Int) { state = Mutex(State(results: Array(repeating: nil, count: count))) }

        /// Records session `i`'s end; true if it is the first to end.
        func finish(_ i: Int, _ result: Result<LiveStats, any Error>) -> Bool {
            state.withLock { s in
                s.results[i] = result
                guard s.first == nil else { return false }
                s.first = i
                return true
            }
        }

        /// The sessions' counts added up, with the first session's end reason; its failure first, then
        /// the others'. Rethrows the error of the first session that threw one.
        func merged() throws -> LiveStats {
            let (results, first) = state.withLock { s in (s.results, s.first) }
            var stats = LiveStats()
            var failures: [String] = []
            for i in results.indices {
                guard let result = results[i] else { continue }
                let s = try result.get()
                stats.samples &+= s.samples
                stats.lost +|= s.lost
                stats.perfOutputFailures +|= s.perfOutputFailures
                stats.unattributed +|= s.unattributed
                stats.clockBracket = max(stats.clockBracket, s.clockBracket)
                stats.reconnects &+= s.reconnects
                stats.malformed &+= s.malformed
                if let failure = s.failure {
                    if i == first { failures.insert(failure, at: 0) } else { failures.append(failure) }
                }
                if i == first { stats.endReason = s.endReason }
            }
            stats.failure = failures.isEmpty ? nil : failures.joined(separator: "; ")
            return stats
        }
    }

    /// The sink shared by the sessions, and the lock that gives it one call at a time.
    private final class Shared: @unchecked Sendable {
        let sink: any LiveSink
        let lock = Mutex(())
        init(_ sink: any LiveSink) { self.sink = sink }
    }

    /// One session's sink: moves its node indexes to their place among all the sessions' nodes and
    /// forwards under the shared lock.
    private final class NodeSink: LiveSink {
        let shared: Shared
        let base: Int

        init(shared: Shared, base: Int) {
            self.shared = shared
            self.base = base
        }

        func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64) {
            let sink = shared.sink
            shared.lock.withLock { _ in sink.interfaceName(node: base + node, ifindex: ifindex, name: name, time: time) }
        }

        func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
            let sink = shared.sink
            shared.lock.withLock { _ in sink.sample(node: base + node, cpu: cpu, bytes: bytes, time: time) }
        }

        func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
            let sink = shared.sink
            shared.lock.withLock { _ in sink.lost(node: base + node, cpu: cpu, count: count, time: time) }
        }

        func flush() -> Bool {
            let sink = shared.sink
            return shared.lock.withLock { _ in sink.flush() }
        }

        var stopReason: String? {
            let sink = shared.sink
            return shared.lock.withLock { _ in sink.stopReason }
        }
    }
}
