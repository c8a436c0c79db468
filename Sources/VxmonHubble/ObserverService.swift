import GRPCCore
import Glibc
import Synchronization
import SwiftProtobuf
import VxmonCore
import VxmonLive

/// `observer.Observer` for one node: its flows from its ring.
public struct ObserverService: Observer_Observer.SimpleServiceProtocol {
    public let lab: HubbleLab
    public let node: HubbleLab.Node
    /// Ring entries read per lock of the ring: what a follower holds while its write waits for the
    /// client (with that write's bytes, `TimedWriter.chunk`). A stalled follower was measured at about
    /// 310 KiB in all (its connection included), against 0.7 to 1.6 MiB with 512 built messages a write.
    static let batch = 64

    /// How long one write may wait for a client that does not read before the request is ended
    /// (RESOURCE_EXHAUSTED): 30 s, or `VXMON_HUBBLE_STALL_SECONDS` (1 to 3600) if set.
    static let stallLimit: Duration = {
        if let text = getenv("VXMON_HUBBLE_STALL_SECONDS").map({ String(cString: $0) }), let s = Int(text),
            (1...3600).contains(s)
        {
            return .seconds(s)
        }
        return .seconds(30)
    }()

    public init(lab: HubbleLab, node: HubbleLab.Node) {
        self.lab = lab
        self.node = node
    }

    public func serverStatus(request: Observer_ServerStatusRequest, context: ServerContext) async throws
        -> Observer_ServerStatusResponse
    {
        let status = node.ring.status
        var response = Observer_ServerStatusResponse()
        response.numFlows = status.numFlows
        response.maxFlows = status.maxFlows
        response.seenFlows = status.seenFlows
        response.uptimeNs = status.uptimeNanoseconds
        response.version = lab.version
        return response
    }

    /// Every node of the lab, as Hubble Relay lists them (all served by this process, so connected).
    public func getNodes(request: Observer_GetNodesRequest, context: ServerContext) async throws -> Observer_GetNodesResponse {
        var response = Observer_GetNodesResponse()
        for n in lab.nodes {
            let status = n.ring.status
            var node = Observer_Node()
            node.name = n.name
            node.version = lab.version
            node.address = n.address
            node.state = .nodeConnected
            node.uptimeNs = status.uptimeNanoseconds
            node.numFlows = status.numFlows
            node.maxFlows = status.maxFlows
            node.seenFlows = status.seenFlows
            response.nodes.append(node)
        }
        return response
    }

    /// GetFlows: the history the query asks for, then (with `follow`) new flows as they come.
    ///
    /// What one request can cost is bounded: it reads at most `batch` ring entries at a time and
    /// fetches no more while a write waits for the client, so a follower that does not read holds at
    /// most one batch (falling behind the shared ring, it is told what it missed, as Hubble does); a
    /// write that waits longer than `stallLimit` ends the request with RESOURCE_EXHAUSTED (the status
    /// reaches the client after what was already sent, when it reads again); the filters of requests
    /// that have any are evaluated by one walker at a time in slices (`WalkGate`), so no number of
    /// costly requests occupies more than one thread of the pool that also answers Health and
    /// ServerStatus; the work stops when the client cancels or its deadline passes.
    public func getFlows(
        request: Observer_GetFlowsRequest, response: RPCWriter<Observer_GetFlowsResponse>, context: ServerContext
    ) async throws {
        let query = try FlowQuery(request, pods: lab.pods)
        let writer = TimedWriter(response)
        defer { HeapTrim.afterRequest() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.serve(query, writer) }
                group.addTask { try await writer.watch(limit: Self.stallLimit) }
                // A client's cancel (or deadline) does not cancel this task: only its RPC handle says so.
                group.addTask {
                    try await context.cancellation.cancelled
                    throw CancellationError()
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch is TimedWriter.Stalled {
            throw RPCError(
                code: .resourceExhausted,
                message: "GetFlows ended: the client took nothing for \(Self.stallLimit.components.seconds) s "
                    + "(vxmon-hubble waits at most that long for a client to read what it sends)")
        }
    }

    /// The history, then the follow loop.
    func serve(_ query: FlowQuery, _ writer: TimedWriter) async throws {
        let ring = node.ring
        // Registered before the history is read, so nothing appended in between is missed.
        let updates = query.follow ? ring.updates() : nil
        let end = try await sendHistory(query, ring: ring, writer: writer)
        guard let updates else { return }
        var cursor = end
        for await _ in updates {
            while true {
                let (entries, missed) = ring.entries(from: cursor, limit: Self.batch)
                if missed > 0 {
                    // Overwritten before this follower got to them: told once, as Hubble does.
                    cursor += missed
                    try await writer.write(CollectionOfOne(Self.lostNotice(missed, node: node.name)))
                }
                guard let last = entries.last else { break }
                cursor = last.0 + 1
                let admitted = try await Self.admitted(entries, query)
                if let stop = admitted.firstIndex(where: { query.isAfterUntil($0.1) }) {
                    try await writer.send(admitted[..<stop])
                    return
                }
                try await writer.send(admitted[...])
                if entries.count < Self.batch { break }
            }
        }
    }

    /// The flows already held that the query asks for; returns where following goes on. Walks the
    /// ring `batch` entries at a time (never a copy of the whole ring): the first entries, forwards
    /// (sent as they are found); or the last `number`, backwards (kept until found, at most `number`
    /// and never more than the ring holds).
    func sendHistory(_ query: FlowQuery, ring: FlowRing, writer: TimedWriter) async throws -> UInt64 {
        let window = ring.window
        let end = window.upperBound
        if query.first || (query.number == 0 && (!query.follow || query.since != nil)) {
            let limit = query.first ? query.number : 0
            var sent = 0
            var cursor = window.lowerBound
            while cursor < end {
                let (entries, missed) = ring.entries(from: cursor, limit: min(Self.batch, Int(end - cursor)))
                if missed > 0 {
                    // Only what the history covers: entries overwritten past `end` are the follow's to
                    // tell (it reads on from `end`), so they are not counted twice.
                    let lost = min(missed, end - cursor)
                    cursor += lost
                    try await writer.write(CollectionOfOne(Self.lostNotice(lost, node: node.name)))
                }
                // After a miss the read starts at the oldest held: what it got past `end` is the follow's.
                let held = entries.prefix { $0.0 < end }
                guard let last = held.last else { break }
                cursor = last.0 + 1
                var chosen = try await Self.admitted(Array(held), query).filter { !query.isAfterUntil($0.1) }
                if limit > 0 && sent + chosen.count >= limit { chosen.removeLast(sent + chosen.count - limit) }
                try await writer.send(chosen[...])
                sent += chosen.count
                if limit > 0 && sent >= limit { break }
            }
        } else if query.number > 0 {
            var chosen: [(UInt64, FlowRing.Entry)] = []
            var before = end
            while before > window.lowerBound && chosen.count < query.number {
                let from = before - min(UInt64(Self.batch), before - window.lowerBound)
                let (read, missed) = ring.entries(from: from, limit: Int(before - from))
                // After a miss the read starts at the oldest held: what it got from `before` on is taken.
                let entries = Array(read.prefix { $0.0 < before })
                // Found in order, newest first, then put back in time order.
                let admitted = try await Self.admitted(entries, query).filter { !query.isAfterUntil($0.1) }
                chosen += admitted.reversed().prefix(query.number - chosen.count)
                // The writer overtook the walk: what is older is gone.
                if missed > 0 || entries.isEmpty { break }
                before = from
            }
            chosen.reverse()
            try await writer.send(chosen[...])
        }
        return end
    }

    /// The entries of `entries` the query admits, in order. A query without filters costs a time
    /// check per entry and runs at once; one with filters runs through the walk gate, in slices of at
    /// most `WalkGate.slice`, and stops (throwing) when the request is cancelled.
    static func admitted(
        _ entries: [(UInt64, FlowRing.Entry)], _ query: FlowQuery
    ) async throws -> [(UInt64, FlowRing.Entry)] {
        guard query.hasFilters else { return entries.filter { query.admits($0.1) } }
        var out: [(UInt64, FlowRing.Entry)] = []
        var i = 0
        while i < entries.count {
            try await WalkGate.shared.enter()
            defer { WalkGate.shared.leave() }
            try Task.checkCancellation()
            let deadline = monotonicNanoseconds() &+ WalkGate.slice
            repeat {
                if query.admits(entries[i].1) { out.append(entries[i]) }
                i += 1
            } while i < entries.count && monotonicNanoseconds() < deadline
        }
        return out
    }

    static func lostNotice(_ count: UInt64, node: String) -> Observer_GetFlowsResponse {
        var lost = Flow_LostEvent()
        lost.source = .hubbleRingBuffer
        lost.numEventsLost = count
        var r = Observer_GetFlowsResponse()
        r.lostEvents = lost
        r.nodeName = node
        r.time = Google_Protobuf_Timestamp(nanoseconds: wallClockNanoseconds())
        return r
    }
}

extension Google_Protobuf_Timestamp {
    init(nanoseconds: UInt64) {
        self.init(seconds: Int64(nanoseconds / 1_000_000_000), nanos: Int32(nanoseconds % 1_000_000_000))
    }

    var nanoseconds: UInt64? {
        guard seconds >= 0, nanos >= 0, nanos < 1_000_000_000 else { return nil }
        let (s, o) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (t, o2) = s.addingReportingOverflow(UInt64(nanos))
        return o || o2 ? nil : t
    }
}

/// A GetFlows request, checked: what Hubble's observer honours, and a refusal
/// (INVALID_ARGUMENT) for what vxmon's does not.
struct FlowQuery: Sendable {
    var number: Int
    var first: Bool
    var follow: Bool
    var since: UInt64?
    var until: UInt64?
    var filter: HubbleFilter

    init(_ request: Observer_GetFlowsRequest, pods: PodDirectory) throws {
        if !request.unknownFields.data.isEmpty {
            throw RPCError(code: .invalidArgument, message: "GetFlowsRequest fields not supported by vxmon's observer")
        }
        if request.first && request.follow {
            throw RPCError(code: .invalidArgument, message: "first cannot be combined with follow")
        }
        number = request.number > UInt64(Int32.max) ? Int(Int32.max) : Int(request.number)
        first = request.first
        follow = request.follow
        if request.hasSince {
            guard let t = request.since.nanoseconds else { throw RPCError(code: .invalidArgument, message: "since: invalid timestamp") }
            since = t
        }
        if request.hasUntil {
            guard let t = request.until.nanoseconds else { throw RPCError(code: .invalidArgument, message: "until: invalid timestamp") }
            until = t
        }
        if let since, let until, until < since {
            throw RPCError(code: .invalidArgument, message: "until is before since")
        }
        do {
            filter = try HubbleFilter(whitelist: request.whitelist, blacklist: request.blacklist, pods: pods)
        } catch let error as HubbleFilter.UnsupportedFilter {
            throw RPCError(code: .invalidArgument, message: error.description)
        }
    }

    func time(_ entry: FlowRing.Entry) -> UInt64 {
        switch entry {
        case .flow(_, let hubble): hubble.time
        case .built(let response): response.time.nanoseconds ?? 0
        }
    }

    /// Whether the request has any whitelist or blacklist filter (their cost is the request's to choose).
    var hasFilters: Bool { !filter.set.whitelist.isEmpty || !filter.set.blacklist.isEmpty }

    /// Passes the filters and is not before `since`.
    func admits(_ entry: FlowRing.Entry) -> Bool {
        if let since, time(entry) < since { return false }
        return filter.matches(entry)
    }

    func isAfterUntil(_ entry: FlowRing.Entry) -> Bool {
        guard let until else { return false }
        return time(entry) > until
    }
}

/// A GetFlows response stream that knows how long its current write has waited for the client, and a
/// watch that ends the request when that exceeds a limit.
final class TimedWriter: Sendable {
    struct Stalled: Error {}

    private let response: RPCWriter<Observer_GetFlowsResponse>
    /// When the write in progress began (monotonic nanoseconds), 0 when none is.
    private let pendingSince = Atomic<UInt64>(0)

    init(_ response: RPCWriter<Observer_GetFlowsResponse>) { self.response = response }

    /// Writes `messages` (nothing when empty); returns once the transport took them, which waits
    /// while the stream's flow-control window and send buffer are full.
    func write(_ messages: some Collection<Observer_GetFlowsResponse>) async throws {
        guard !messages.isEmpty else { return }
        // `| 1`: never 0 (none), a nanosecond off at most.
        pendingSince.store(monotonicNanoseconds() | 1, ordering: .relaxed)
        defer { pendingSince.store(0, ordering: .relaxed) }
        try await response.write(contentsOf: messages)
    }

    /// Messages per write. Each message is built as the transport serializes it and dropped at once
    /// (a built flow weighs a few KiB, its bytes about 360), so a write that waits holds only its
    /// bytes (about 23 KiB). Not fewer: writes smaller than the HTTP/2 stream's send watermark
    /// (8 KiB) were measured to keep completing on a connection whose window the client had used up
    /// (99 stalled streams on one grpcio connection: the server grew 10 MB a second), where 64 a
    /// write held at 390 KiB per stream with the messages built ahead.
    static let chunk = 64

    /// Sends the messages of `entries`, `chunk` at a time, each chunk once the previous one was taken.
    func send(_ entries: ArraySlice<(UInt64, FlowRing.Entry)>) async throws {
        guard !entries.isEmpty else { return }
        let builder = FlowBuilder()
        var i = entries.startIndex
        while i < entries.endIndex {
            let j = min(i + Self.chunk, entries.endIndex)
            // Lazy: the transport's serializer builds each message as it takes it.
            try await write(entries[i..<j].lazy.map { FlowRing.build($0.1, builder) })
            i = j
        }
    }

    /// Throws `Stalled` once a write has waited `limit`; checks four times per limit (at most every second).
    func watch(limit: Duration) async throws {
        let limitNanoseconds = UInt64(limit.components.seconds) * 1_000_000_000
        let period = min(Duration.seconds(1), limit / 4)
        while true {
            try await Task.sleep(for: period)
            let since = pendingSince.load(ordering: .relaxed)
            if since != 0, monotonicNanoseconds() &- since >= limitNanoseconds { throw Stalled() }
        }
    }
}

/// Lets one filtered walk at a time run, in slices: the filters of a request are its own to choose
/// (up to `HubbleFilter.maxValues` terms per flow), so however many such requests run, they share one
/// thread of the cooperative pool, taking turns in arrival order, and leave the others to Health,
/// ServerStatus and the streams.
final class WalkGate: Sendable {
    static let shared = WalkGate()
    /// Longest slice of filter evaluation between turns: 2 ms.
    static let slice: UInt64 = 2_000_000

    private struct State {
        var busy = false
        var nextID: UInt64 = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())

    /// Waits for the turn (first come, first served); throws `CancellationError` if the task is
    /// cancelled while waiting. Every successful `enter` is paired with one `leave`.
    func enter() async throws {
        let id: UInt64? = state.withLock { s in
            if !s.busy {
                s.busy = true
                return nil
            }
            s.nextID &+= 1
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admitted: Bool? = state.withLock { s in
                    // `leave` ran between the two locks: the turn is ours.
                    if !s.busy {
                        s.busy = true
                        return true
                    }
                    // Cancelled before this waiter was listed: `onCancel` found nothing to resume.
                    if Task.isCancelled { return nil }
                    s.waiters.append((id, continuation))
                    return false
                }
                switch admitted {
                case true?: continuation.resume()
                case nil: continuation.resume(throwing: CancellationError())
                case false?: break
                }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, any Error>? = state.withLock { s in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Ends the turn: hands it to the first waiter, if any.
    func leave() {
        let next: CheckedContinuation<Void, any Error>? = state.withLock { s in
            guard !s.waiters.isEmpty else {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}

/// Gives the heap's free pages back to the system after requests end: glibc keeps what a thread's
/// arena freed (a stalled follower's batch, the streams' buffers) unless asked, so 400 followers that
/// left still weighed 419 MB. `malloc_trim` runs every second from one second after a request ends
/// until `quietSeconds` have passed without one (its connection is torn down after it), never on a
/// request's own path.
enum HeapTrim {
    static let quietSeconds = 5
    private static let ended = Atomic<Int>(0)
    private static let running = Atomic<Bool>(false)

    /// glibc's `malloc_trim` (not in Swift's Glibc module; absent elsewhere).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        // nil is RTLD_DEFAULT: the symbol wherever the process has it.
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    static func afterRequest() {
        ended.add(1, ordering: .relaxed)
        guard let trim = mallocTrim,
            running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Task.detached(priority: .background) {
            var quiet = 0
            while true {
                try? await Task.sleep(for: .seconds(1))
                quiet = ended.exchange(0, ordering: .relaxed) > 0 ? 0 : quiet + 1
                _ = trim(0)
                if quiet < quietSeconds { continue }
                running.store(false, ordering: .releasing)
                // One that ended after the exchange and found the trimmer still running: go on for it.
                guard ended.load(ordering: .relaxed) > 0,
                    running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
                else { return }
                quiet = 0
            }
        }
    }
}
