import Synchronization
import VxmonCore
import VxmonLive

/// One node's last flows, as Hubble keeps them in its event buffer: a fixed number of
/// `GetFlowsResponse`s (flows and lost-events notices), the oldest overwritten by the newest, each
/// with a sequence number so that a reader knows how many it missed. Memory is bounded by
/// `capacity` entries whatever the event rate; readers never hold the lock while they send.
public final class FlowRing: Sendable {
    public let capacity: Int
    private let state: Mutex<State>
    private let started = wallClockNanoseconds()

    struct State: ~Copyable {
        var entries: [Entry?]
        /// The sequence number the next entry gets (entries are `next - count ..< next`).
        var next: UInt64 = 0
        var count = 0
        /// Flows appended since the start (lost-events notices not counted).
        var seenFlows: UInt64 = 0
        var waiters: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextWaiter = 0
        var pendingNotify = false
        var sinceNotify = 0
        var closed = false
    }

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        state = Mutex(State(entries: Array(repeating: nil, count: capacity)))
    }

    /// Appends one entry. Readers are woken by `notify()` (once per batch, not per entry), and also
    /// every quarter of the ring within a long batch, so that a reader keeping up is not overrun by
    /// one batch larger than the ring.
    /// What a slot holds: a flow as ingested (its message is built when a reader takes it: most
    /// flows of a flood are overwritten unread), or a message made as it is (lost-events notices).
    /// A flow keeps the `Flow` it was mapped from: a query's filters read that (`HubbleFilter`).
    public enum Entry: Sendable {
        case flow(Flow, HubbleFlow)
        case built(Observer_GetFlowsResponse)
    }

    public func append(_ response: Observer_GetFlowsResponse) {
        let isFlow = if case .flow = response.responseTypes { true } else { false }
        store(.built(response), isFlow: isFlow)
    }

    /// Appends a flow; its `flow.Flow` is built by the readers that take it (`read`, `build`).
    public func append(_ flow: Flow, _ hubble: HubbleFlow) { store(.flow(flow, hubble), isFlow: true) }

    private func store(_ entry: Entry, isFlow: Bool) {
        let wake: [AsyncStream<Void>.Continuation] = state.withLock { s in
            s.entries[Int(s.next % UInt64(capacity))] = entry
            s.next &+= 1
            if s.count < capacity { s.count += 1 }
            if isFlow { s.seenFlows &+= 1 }
            s.pendingNotify = true
            s.sinceNotify += 1
            guard s.sinceNotify >= max(capacity / 4, 1), !s.waiters.isEmpty else { return [] }
            s.sinceNotify = 0
            return Array(s.waiters.values)
        }
        for waiter in wake { waiter.yield() }
    }

    /// Wakes every waiting reader if something was appended since the last call.
    public func notify() {
        let waiters: [AsyncStream<Void>.Continuation] = state.withLock { s in
            guard s.pendingNotify else { return [] }
            s.pendingNotify = false
            s.sinceNotify = 0
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.yield() }
    }

    public struct Status: Sendable {
        public var numFlows: UInt64
        public var maxFlows: UInt64
        public var seenFlows: UInt64
        public var uptimeNanoseconds: UInt64
    }

    public var status: Status {
        let (count, seen) = state.withLock { ($0.count, $0.seenFlows) }
        return Status(
            numFlows: UInt64(count), maxFlows: UInt64(capacity), seenFlows: seen,
            uptimeNanoseconds: wallClockNanoseconds() &- started)
    }

    /// The range of sequence numbers held now.
    public var window: Range<UInt64> {
        state.withLock { $0.next - UInt64($0.count) ..< $0.next }
    }

    /// Up to `limit` entries from sequence number `from` on, as messages (built here, outside the
    /// lock, for flows), and how many were overwritten before `from` could be read.
    public func read(from: UInt64, limit: Int) -> (entries: [(UInt64, Observer_GetFlowsResponse)], missed: UInt64) {
        let (held, missed) = entries(from: from, limit: limit)
        guard !held.isEmpty else { return ([], missed) }
        let builder = FlowBuilder()
        return (held.map { seq, entry in (seq, Self.build(entry, builder)) }, missed)
    }

    /// An entry's message (built now for a flow).
    public static func build(_ entry: Entry, _ builder: FlowBuilder) -> Observer_GetFlowsResponse {
        switch entry {
        case .built(let response): response
        case .flow(_, let hubble): builder.response(hubble)
        }
    }

    /// Up to `limit` entries from sequence number `from` on (from the oldest held if that one was
    /// overwritten), as stored, and how many were overwritten before `from` could be read.
    public func entries(from: UInt64, limit: Int) -> (entries: [(UInt64, Entry)], missed: UInt64) {
        state.withLock { s in
            let oldest = s.next - UInt64(s.count)
            let start = max(from, oldest)
            let missed = start > from ? start - from : 0
            guard start < s.next else { return ([], missed) }
            let end = min(s.next, start + UInt64(max(limit, 0)))
            var out: [(UInt64, Entry)] = []
            out.reserveCapacity(Int(end - start))
            var seq = start
            while seq < end {
                if let entry = s.entries[Int(seq % UInt64(capacity))] { out.append((seq, entry)) }
                seq += 1
            }
            return (out, missed)
        }
    }

    /// A stream that yields after appends (coalesced: one wake-up for any number of entries); ends
    /// its registration when the stream is dropped or its task cancelled.
    public func updates() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { s in
            guard !s.closed else { return nil }
            let id = s.nextWaiter
            s.nextWaiter += 1
            s.waiters[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.waiters.removeValue(forKey: id) }
        }
        return stream
    }

    public var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Ends every follower's stream (after what it has been sent), and any that start later.
    public func close() {
        let waiters: [AsyncStream<Void>.Continuation] = state.withLock { s in
            s.closed = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.finish() }
    }
}
