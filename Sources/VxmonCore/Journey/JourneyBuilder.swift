import VxmonWire
#if canImport(Glibc)
import Glibc
#endif

/// Where finished journeys go: the text, JSON and YAML renderers, the drawing, the summary.
public protocol JourneyOutput: AnyObject {
    /// One exchange: a journey alone, or a request and its reply, in that order. Called on the
    /// pipeline's thread; `journeys` is valid only during the call.
    func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder)
    /// The run ended (after the last exchange).
    func finish(builder: JourneyBuilder)
    /// Writes what is buffered.
    func flush() -> SinkStatus
}

extension JourneyOutput {
    public func finish(builder: JourneyBuilder) {}
    public func flush() -> SinkStatus { .ok }
}

/// Groups the events of one packet, on every node and at every observation point, into a journey
/// (`Journey`), pairs requests with their replies, and hands finished exchanges to its outputs.
///
/// An event joins the open journey of its packet (`PacketKey`: the inner packet's 5-tuple and what
/// tells it from its neighbours), so the to-overlay trace on one node meets the from-network and
/// from-overlay traces of the same packet on the other. A journey ends at its terminal hop (to an
/// endpoint, the host, the stack or a proxy; a drop); one still open `timeout` after its first hop is
/// closed (lost when samples were lost meanwhile, else unfinished), and past `maxOpen` open journeys
/// the oldest is closed early (evicted). Every close is counted. The builder's clock is the events'
/// own time: nothing is closed by the wall clock, and a replay gives what the live run gave.
///
/// A filter selects journeys, not events: an exchange is shown when one of its events passes it
/// (so `--node worker` shows the journeys that touch worker, whole).
public final class JourneyBuilder: EventSink {
    public struct Options: Sendable {
        /// A journey is closed this long after its first hop (ns of the events' time); a request waits
        /// for its reply as long.
        public var timeout: UInt64 = 5_000_000_000
        /// At most this many journeys are kept open (or waiting for their pair).
        public var maxOpen = 65536
        /// Hops kept per journey; more are counted only.
        public var maxHops = 32
        /// Hops kept in all open journeys together (about 100 bytes each): past it the oldest journey is
        /// closed (evicted). Many open journeys of many hops each (a hostile recording) stay bounded.
        public var maxHopsHeld = 262_144
        /// A journey that reached its terminal hop waits this long (ns of the events' time) for hops
        /// that come late: for sources whose event times are when vxmon read them (Cilium agents'
        /// sockets carry no kernel time), where the far node's events can be read first. 0: none.
        public var settle: UInt64 = 0
        /// Live input: the builder's clock also follows the wall clock when no event comes (event
        /// times are wall-clock times there), so journeys close on time in a quiet moment.
        public var followWallClock = false
        public init() {}
    }

    /// What the builder saw, for the summary: the counts add up (see `JourneyStats`).
    public struct Counters: Sendable {
        /// Events received.
        public var events = 0
        /// Events that joined a journey as a hop (`hops`), or were counted past a journey's hop limit.
        public var hops = 0
        public var extraHops = 0
        /// Events of no journey: without an IP packet (ARP, socket traces, debug messages, ...).
        public var otherEvents = 0
        /// Journeys made, and those shown (an event of their exchange passed the filter).
        public var journeys: UInt64 = 0
        public var shown: UInt64 = 0
        /// Shown journeys by outcome (`JourneyOutcome` order).
        public var outcomes: [UInt64] = [0, 0, 0, 0]
        /// Shown journeys delivered with every expected hop, and their expected hops not seen.
        public var complete: UInt64 = 0
        public var missingHops: UInt64 = 0
        /// Journeys closed by their timeout, or evicted to keep `maxOpen`.
        public var timedOut: UInt64 = 0
        public var evicted: UInt64 = 0
        /// Journeys closed because a later packet with the same key reached one of their hops.
        public var superseded: UInt64 = 0
        /// Request/reply pairs made.
        public var pairs: UInt64 = 0
        /// Samples reported lost, and the records that said so.
        public var lostSamples: UInt64 = 0
        public var lostRecords = 0
        /// Node names past `maxNodes`, counted under no node.
        public var nodesOverflow = 0
    }

    public let options: Options
    /// The Cilium release whose names the outputs use (drop reasons).
    public let release: CiliumRelease
    /// `options.settle`, or Cilium's sockets' settling time once a recording says it came from them.
    public private(set) var settle: UInt64
    /// How long an ended journey waits for late hops when events come from Cilium's sockets, ns.
    public static let socketSettle: UInt64 = 250_000_000
    public let pods: PodDirectory
    public let names: InterfaceNames
    public let clocks = ClockOffsets()
    public private(set) var counters = Counters()
    public private(set) var outputs: [any JourneyOutput] = []
    private let filter: EventFilter
    private var matcher: FilterMatcher?

    /// Node names: index 0 is "no node" (a Cilium socket's events), names from 1 on.
    public private(set) var nodeNames: [String?] = [nil]
    private var nodeIndex: [String: UInt16] = [:]
    private var lastNode: String?
    private var lastNodeIndex: UInt16 = 0
    public static let maxNodes = 4096
    /// Nodes whose underlay is traced (a from-network trace of a tunnel packet was seen there).
    private var underlayTraced: [Bool] = [false]

    private enum State: UInt8 {
        case free
        /// Collecting hops.
        case open
        /// Ended with expected hops missing: kept (still collecting) until its time runs out, so a
        /// late event can fill the gap and lost samples reported late can explain it.
        case held
        /// Closed, waiting for the other journey of its exchange.
        case done
    }

    private struct Slot {
        var journey: Journey
        var state = State.free
        /// Told apart from the slot's earlier journeys (`settling` entries).
        var generation: UInt32 = 0
        var deadline: UInt64 = 0
        var lostAtStart: UInt64 = 0
        /// The exchange under which it waits for a reply (`pending`).
        var waitingAs: ExchangeKey?
        /// The other journey's slot.
        var partner: Int32 = -1
        /// Creation-order list of live slots (oldest first).
        var prev: Int32 = -1
        var next: Int32 = -1
    }

    private var slots: [Slot] = []
    private var freeSlots: [Int32] = []
    private var open: [PacketKey: Int32] = [:]
    private var pending: [ExchangeKey: Int32] = [:]
    private var head: Int32 = -1
    private var tail: Int32 = -1
    public private(set) var live = 0
    /// The newest event time seen: the builder's clock.
    public private(set) var now: UInt64 = 0
    private var nextID: UInt64 = 1
    private var emitBuffer: [Journey] = []
    /// Hops in live journeys (`maxHopsHeld`).
    public private(set) var hopsHeld = 0
    /// A time far ahead of the clock, waiting for a second event to confirm it (`advance`).
    private var pendingJump: UInt64?
    /// Journeys that ended and wait `settle` for late hops: (slot, generation, until), in end order.
    private var settling: [(slot: Int32, generation: UInt32, until: UInt64)] = []
    private var settlingHead = 0
    /// (time, cumulative lost samples) when the count grew, coalesced per ms; the oldest half is
    /// dropped past 4,096 entries (`lostFloor` keeps the count as it stood before them).
    private var lostHistory: [(time: UInt64, total: UInt64)] = []
    private var lostFloor: UInt64 = 0

    public init(
        options: Options = Options(), filter: EventFilter = EventFilter(), pods: PodDirectory, names: InterfaceNames,
        release: CiliumRelease = .v1_13
    ) {
        self.options = options
        self.release = release
        settle = options.settle
        self.pods = pods
        self.names = names
        var filter = filter
        filter.names = names
        self.filter = filter
        matcher = filter.isEmpty ? nil : FilterMatcher(filter, pods: pods)
        emitBuffer.reserveCapacity(2)
    }

    public func add(_ output: any JourneyOutput) { outputs.append(output) }

    /// The name of node `index` (nil: none).
    public func nodeName(_ index: UInt16) -> String? {
        Int(index) < nodeNames.count ? nodeNames[Int(index)] : nil
    }

    /// The index of a node by name, if it was seen.
    public func nodeIndex(of name: String?) -> UInt16? {
        guard let name else { return 0 }
        return nodeIndex[name]
    }

    /// True when node `index` traces its underlay (a from-network trace of a tunnel packet came from it).
    public func tracesUnderlay(_ index: UInt16) -> Bool { Int(index) < underlayTraced.count && underlayTraced[Int(index)] }

    private func index(of node: String?) -> UInt16 {
        guard let node else { return 0 }
        if let lastNode, lastNode == node { return lastNodeIndex }
        let i: UInt16
        if let known = nodeIndex[node] {
            i = known
        } else if nodeNames.count < Self.maxNodes {
            i = UInt16(nodeNames.count)
            nodeNames.append(node)
            underlayTraced.append(false)
            nodeIndex[node] = i
        } else {
            counters.nodesOverflow += 1
            return 0
        }
        lastNode = node
        lastNodeIndex = i
        return i
    }

    // MARK: EventSink

    public func event(_ event: borrowing Event, record: RawSpan) {
        counters.events += 1
        let time = event.flow.timeNanoseconds
        advance(to: time)
        let kind: JourneyHop.Kind
        var sourceIdentity: UInt32 = 0
        var destinationIdentity: UInt32 = 0
        switch event.message {
        case .trace(let t):
            kind = .trace
            sourceIdentity = t.sourceIdentity
            destinationIdentity = t.destinationIdentity
        case .drop(let d):
            kind = .drop
            sourceIdentity = d.sourceIdentity
            destinationIdentity = d.destinationIdentity
        case .policyVerdict:
            kind = .policyVerdict
            sourceIdentity = event.flow.sourceIdentity ?? 0
            destinationIdentity = event.flow.destinationIdentity ?? 0
        default:
            counters.otherEvents += 1
            return
        }
        guard let key = PacketKey(event, record: record) else {
            counters.otherEvents += 1
            return
        }
        let node = index(of: event.flow.node)
        var hop = JourneyHop(
            kind: kind, node: node, point: kind == .trace ? event.flow.observationPoint : nil, ifindex: event.flow.ifindex ?? 0,
            time: time, sourceIdentity: sourceIdentity, destinationIdentity: destinationIdentity,
            dropReason: event.flow.dropReason, policyAction: event.flow.policyAction, verdict: event.flow.verdict)
        if event.flow.primaryIsInner, let tunnel = event.flow.tunnel {
            hop.tunnel = tunnel
            hop.outerSource = event.flow.outer.source
            hop.outerDestination = event.flow.outer.destination
            if hop.point == .fromNetwork { underlayTraced[Int(node)] = true }
        }
        if let matcher {
            hop.matched = withUnsafePointer(to: event.flow) { matcher.matches($0) }
        }
        var s: Int32
        if let known = open[key] {
            s = known
            // A hop it already has is another packet with the same key: this one starts anew.
            if slots[Int(s)].journey.hops.contains(where: { $0.node == hop.node && $0.point == hop.point && $0.kind == hop.kind }) {
                // (One that ended and waits for a missing hop stays `ended`: it was delivered or dropped.)
                if slots[Int(s)].state == .open { counters.superseded &+= 1 }
                force(s, .superseded)
                s = create(key, time: time)
            }
        } else {
            s = create(key, time: time)
        }
        let i = Int(s)
        while hopsHeld >= max(options.maxHopsHeld, 1) && head >= 0 && head != s && slots[Int(head)].partner != s {
            force(head, .evicted)
        }
        if slots[i].journey.hops.count < options.maxHops && hopsHeld < max(options.maxHopsHeld, 1) {
            slots[i].journey.hops.append(hop)
            hopsHeld += 1
            counters.hops += 1
        } else {
            slots[i].journey.extraHops += 1
            counters.extraHops += 1
        }
        if slots[i].state == .held {
            // A late event may fill the gap (a settling journey waits out its time anyway).
            order(&slots[i].journey)
            analyse(&slots[i].journey)
            if slots[i].journey.missing.isEmpty && settle == 0 { finalize(s, .ended) }
        } else if hop.isTerminal {
            close(s, .ended)
        }
    }

    public func lost(_ lost: LostSamples) {
        counters.lostSamples +|= lost.count
        counters.lostRecords += 1
        // When, on the events' clock, the count grew: a journey counts the samples lost from shortly
        // before its first hop (a lost record can be read before the events around it).
        let t = max(lost.timeNanoseconds, now, lostHistory.last?.time ?? 0)
        if let last = lostHistory.last, t &- last.time < 1_000_000 {
            lostHistory[lostHistory.count - 1].total = counters.lostSamples
        } else {
            lostHistory.append((t, counters.lostSamples))
            if lostHistory.count > 4096 {
                lostFloor = lostHistory[2047].total
                lostHistory.removeFirst(2048)
            }
        }
    }

    /// Samples lost before this many ns ahead of a journey's first hop are not its own.
    public static let lostLookback: UInt64 = 1_000_000_000

    /// The lost-sample count as it stood `lostLookback` before `time` (0 when earlier than kept).
    private func lostTotal(before time: UInt64) -> UInt64 {
        let t = time &- min(time, Self.lostLookback)
        // The last entry at or before t.
        var lo = 0
        var hi = lostHistory.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if lostHistory[mid].time <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? lostFloor : lostHistory[lo - 1].total
    }

    public func metadata(key: String, value: String, time: UInt64) {
        // A recording of Cilium's sockets (`vxmon record` says so): its times are when events were
        // read, as live, so ended journeys wait for late hops as they did live.
        if key == "buffer" && value == "cilium-monitor-socket" && settle == 0 { settle = Self.socketSettle }
        // The pipeline learns pods into the shared directory; a pod the filter names changes the matcher.
        guard matcher != nil, let pod = PodInfo(metadataKey: key, value: value),
            filter.podSelectors.contains(where: { $0.matches(pod) })
        else { return }
        matcher = FilterMatcher(filter, pods: pods)
    }

    public func flush() -> SinkStatus {
        if options.followWallClock {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let wall = UInt64(max(ts.tv_sec, 0)) &* 1_000_000_000 &+ UInt64(max(ts.tv_nsec, 0))
            if wall > now {
                now = wall
                expire()
            }
        }
        var status = SinkStatus.ok
        for output in outputs {
            let s = output.flush()
            if status == .ok { status = s }
        }
        return status
    }

    /// Closes every journey (the run ended), hands them out, and tells the outputs.
    public func finish() {
        while head >= 0 { force(head, .endOfRun) }
        clocks.refit()
        for output in outputs { output.finish(builder: self) }
    }

    /// Moves the builder's clock to an event's time. A time more than `timeout` ahead of the clock
    /// moves it only once a second event confirms the jump (within `timeout` of it): one record with a
    /// wild time (a hostile or broken recording) would otherwise freeze the clock far ahead, and no
    /// journey would time out again.
    private func advance(to time: UInt64) {
        guard time > now else { return }
        if now != 0 && time &- now > options.timeout {
            if let pending = pendingJump, time >= pending &- min(pending, options.timeout),
                time &- min(time, options.timeout) <= pending
            {
                pendingJump = nil
            } else {
                pendingJump = time
                return
            }
        }
        now = time
        expire()
    }

    // MARK: Journeys

    private func create(_ key: PacketKey, time: UInt64) -> Int32 {
        while live >= max(options.maxOpen, 1) && head >= 0 { force(head, .evicted) }
        let s: Int32
        if let reused = freeSlots.popLast() {
            s = reused
            slots[Int(s)].journey.id = nextID
            slots[Int(s)].journey.key = key
        } else {
            s = Int32(slots.count)
            slots.append(Slot(journey: Journey(id: nextID, key: key)))
        }
        nextID &+= 1
        counters.journeys &+= 1
        live += 1
        let i = Int(s)
        slots[i].state = .open
        slots[i].generation &+= 1
        slots[i].deadline = time > UInt64.max - options.timeout ? .max : time + options.timeout
        slots[i].lostAtStart = lostTotal(before: time)
        slots[i].prev = tail
        slots[i].next = -1
        if tail >= 0 { slots[Int(tail)].next = s } else { head = s }
        tail = s
        open[key] = s
        // Pairing: a reply answers the request waiting under its exchange; a request waits for one.
        let canReply = key.isEchoReply || key.hasPorts
        if canReply, let r = pending.removeValue(forKey: key.reversedExchange) {
            slots[Int(r)].waitingAs = nil
            slots[Int(r)].partner = s
            slots[Int(r)].journey.role = .request
            slots[Int(r)].journey.pairedWith = slots[i].journey.id
            slots[i].partner = r
            slots[i].journey.role = .reply
            slots[i].journey.pairedWith = slots[Int(r)].journey.id
            counters.pairs &+= 1
        } else if key.isEchoRequest || key.hasPorts {
            let exchange = key.exchange
            if let older = pending.updateValue(s, forKey: exchange) {
                // A newer packet of the same exchange: the older one waits no longer.
                slots[Int(older)].waitingAs = nil
                if slots[Int(older)].state == .done { release(older) }
            }
            slots[i].waitingAs = exchange
        }
        return s
    }

    /// Closes journeys whose time ran out (the list is in creation order, which is time order
    /// unless the events' times go back).
    private func expire() {
        // Ended journeys whose settling time is over, unless a hop is still missing (those wait for
        // their deadline, as without settling).
        while settlingHead < settling.count && settling[settlingHead].until <= now {
            let e = settling[settlingHead]
            settlingHead += 1
            let i = Int(e.slot)
            if slots[i].generation == e.generation && slots[i].state == .held && slots[i].journey.missing.isEmpty {
                finalize(e.slot, .ended)
            }
        }
        if settlingHead > 4096 && settlingHead * 2 > settling.count {
            settling.removeFirst(settlingHead)
            settlingHead = 0
        }
        while head >= 0 && slots[Int(head)].deadline <= now {
            let s = head
            // Every journey reaching its deadline is closed and waits no longer for a reply; the
            // journeys after it in the list are younger.
            switch slots[Int(s)].state {
            case .open:
                counters.timedOut &+= 1
                close(s, .timeout)
            case .held:
                finalize(s, .ended)
            case .done, .free:
                break
            }
            stopWaiting(s)
            if slots[Int(s)].state == .done && head == s {
                let p = slots[Int(s)].partner
                if p >= 0 && slots[Int(p)].state != .done {
                    // Its reply is still on its way (its own deadline comes later): the request waits
                    // for it at the end of the list, and goes out with it (`release`).
                    moveToTail(s)
                    slots[Int(s)].deadline = .max
                } else {
                    release(s)
                }
            }
        }
    }

    private func stopWaiting(_ s: Int32) {
        if let w = slots[Int(s)].waitingAs {
            if pending[w] == s { pending[w] = nil }
            slots[Int(s)].waitingAs = nil
        }
    }

    /// Closes `s` now (the run ended, or it is evicted), with its partner, and hands them out.
    private func force(_ s: Int32, _ reason: JourneyCloseReason) {
        let i = Int(s)
        switch slots[i].state {
        case .open:
            if reason == .evicted { counters.evicted &+= 1 } else if reason == .timeout { counters.timedOut &+= 1 }
            close(s, reason)
        case .held: finalize(s, .ended)
        case .done, .free: break
        }
        stopWaiting(s)
        // A superseded journey goes out alone once closed (its partner, if any, goes on).
        if reason == .superseded {
            if slots[i].state == .done { release(s) }
            return
        }
        let p = slots[i].partner
        if p >= 0 {
            switch slots[Int(p)].state {
            case .open:
                if reason == .evicted { counters.evicted &+= 1 } else if reason == .timeout { counters.timedOut &+= 1 }
                close(p, reason)
            case .held: finalize(p, .ended)
            case .done, .free: break
            }
            stopWaiting(p)
        }
        if slots[i].state == .done { release(s) }
    }

    /// Puts the hops in order and reads how the journey went; a journey that ended with an expected
    /// hop missing is held until its time runs out.
    private func close(_ s: Int32, _ reason: JourneyCloseReason) {
        let i = Int(s)
        order(&slots[i].journey)
        analyse(&slots[i].journey)
        if reason == .ended && slots[i].state == .open && (!slots[i].journey.missing.isEmpty || settle > 0) {
            slots[i].state = .held
            if settle > 0 {
                settling.append((s, slots[i].generation, now &+ settle))
            }
            return
        }
        finalize(s, reason)
    }

    private func finalize(_ s: Int32, _ reason: JourneyCloseReason) {
        let i = Int(s)
        if slots[i].state == .held {
            order(&slots[i].journey)
            analyse(&slots[i].journey)
        }
        if open[slots[i].journey.key] == s { open[slots[i].journey.key] = nil }
        slots[i].journey.lostDuring = counters.lostSamples &- slots[i].lostAtStart
        slots[i].journey.closeReason = reason
        if slots[i].journey.outcome == .unfinished && slots[i].journey.lostDuring > 0 { slots[i].journey.outcome = .lost }
        slots[i].state = .done
        release(s)
    }

    /// Hands out the exchange of `s` once every journey of it is closed and no reply is awaited.
    private func release(_ s: Int32) {
        let i = Int(s)
        guard slots[i].state == .done, slots[i].waitingAs == nil else { return }
        let p = slots[i].partner
        if p >= 0 {
            guard slots[Int(p)].state == .done else { return }
            let (first, second) = slots[i].journey.role == .request ? (s, p) : (p, s)
            // Both VNIs on both journeys.
            slots[Int(first)].journey.pairVNI = slots[Int(second)].journey.vni
            slots[Int(second)].journey.pairVNI = slots[Int(first)].journey.vni
            sampleClocks(request: slots[Int(first)].journey, reply: slots[Int(second)].journey)
            emit([first, second])
        } else {
            slots[i].journey.role = .single
            emit([s])
        }
    }

    private func emit(_ members: [Int32]) {
        let shown = members.contains { slots[Int($0)].journey.matched }
        for s in members {
            let i = Int(s)
            if shown {
                let j = slots[i].journey
                counters.shown &+= 1
                counters.outcomes[Int(j.outcome.rawValue)] &+= 1
                if j.isComplete { counters.complete &+= 1 }
                counters.missingHops &+= UInt64(j.missing.count)
                emitBuffer.append(j)
            }
        }
        if shown {
            emitBuffer.withUnsafeBufferPointer { b in
                for output in outputs { output.exchange(b, builder: self) }
            }
            emitBuffer.removeAll(keepingCapacity: true)
        }
        for s in members { free(s) }
    }

    /// Moves `s` to the end of the creation-order list.
    private func moveToTail(_ s: Int32) {
        let i = Int(s)
        guard tail != s else { return }
        let prev = slots[i].prev
        let next = slots[i].next
        if prev >= 0 { slots[Int(prev)].next = next } else { head = next }
        if next >= 0 { slots[Int(next)].prev = prev } else { tail = prev }
        slots[i].prev = tail
        slots[i].next = -1
        if tail >= 0 { slots[Int(tail)].next = s } else { head = s }
        tail = s
    }

    private func free(_ s: Int32) {
        let i = Int(s)
        let prev = slots[i].prev
        let next = slots[i].next
        if prev >= 0 { slots[Int(prev)].next = next } else { head = next }
        if next >= 0 { slots[Int(next)].prev = prev } else { tail = prev }
        if open[slots[i].journey.key] == s { open[slots[i].journey.key] = nil }
        slots[i].state = .free
        slots[i].partner = -1
        slots[i].waitingAs = nil
        slots[i].prev = -1
        slots[i].next = -1
        hopsHeld -= slots[i].journey.hops.count
        // A slot keeps room for a common journey's hops, not for the longest it ever held.
        if slots[i].journey.hops.capacity > 16 { slots[i].journey.hops = [] } else { slots[i].journey.hops.removeAll(keepingCapacity: true) }
        slots[i].journey.missing.removeAll(keepingCapacity: true)
        slots[i].journey.extraHops = 0
        slots[i].journey.outcome = .unfinished
        slots[i].journey.closeReason = .ended
        slots[i].journey.role = .single
        slots[i].journey.pairedWith = nil
        slots[i].journey.vni = nil
        slots[i].journey.vniSource = .none
        slots[i].journey.pairVNI = nil
        slots[i].journey.lostDuring = 0
        slots[i].journey.destinationNode = nil
        live -= 1
        freeSlots.append(s)
    }

    // MARK: Reading a journey

    /// The time from `t` to hop `h`'s time, ns: on the clock of node `origin`, where `t` was taken,
    /// so a hop of another node is corrected by the estimated offset between the two when the
    /// estimate says the clocks differ. (Differences first: a time since the epoch has no whole ns
    /// in a Double.)
    public func interval(from t: UInt64, on origin: UInt16, to h: JourneyHop) -> Double {
        let raw = Double(Int64(bitPattern: h.time &- t))
        guard h.node != origin, let e = clocks.estimate(origin, h.node), e.significant else { return raw }
        return raw - e.offset(at: t)
    }

    /// The time from hop `i - 1` to hop `i`, ns, across nodes corrected by their clocks' offset.
    public func delta(_ j: Journey, _ i: Int) -> Double {
        guard i > 0 else { return 0 }
        let a = j.hops[i - 1]
        return interval(from: a.time, on: a.node, to: j.hops[i])
    }

    /// The offset taken off between hop `i - 1` and hop `i` (nil: none).
    public func correction(_ j: Journey, _ i: Int) -> Double? {
        guard i > 0 else { return nil }
        let a = j.hops[i - 1]
        let b = j.hops[i]
        guard a.node != b.node, let e = clocks.estimate(a.node, b.node), e.significant else { return nil }
        return e.offset(at: a.time)
    }

    /// First hop to last, ns, with the clock corrections of every crossing.
    public func latency(_ j: Journey) -> Double {
        var total = 0.0
        for i in j.hops.indices.dropFirst() { total += delta(j, i) }
        return total
    }

    /// Puts the hops in the order the packet passed them: each node's hops by that node's clock (a
    /// stable sort: equal times keep the order the events came in), and the nodes in causal order:
    /// first the node the packet entered from a pod, the host, the stack or a proxy, last the nodes
    /// it reached from the network or the overlay, the others between; nodes of one rank by their
    /// first hop, on the first node's clock where the offset between the two is known. Raw times
    /// alone would misorder nodes whose clocks differ by more than the packet's flight.
    private func order(_ j: inout Journey) {
        guard j.hops.count > 1 else { return }
        let first = j.hops[0].node
        var sorted = true
        var multiNode = false
        for k in 1..<j.hops.count {
            if j.hops[k].time < j.hops[k - 1].time { sorted = false }
            if j.hops[k].node != first { multiNode = true }
        }
        if sorted && !multiNode { return }
        if !multiNode {
            let start = j.hops[0].time
            let idx = j.hops.indices.sorted {
                let a = Int64(bitPattern: j.hops[$0].time &- start)
                let b = Int64(bitPattern: j.hops[$1].time &- start)
                return a < b || (a == b && $0 < $1)
            }
            j.hops = idx.map { j.hops[$0] }
            return
        }
        // Each node's hops, in their own clock's order.
        var nodes: [UInt16] = []
        var byNode: [UInt16: [Int]] = [:]
        for (k, h) in j.hops.enumerated() {
            if byNode[h.node] == nil { nodes.append(h.node) }
            byNode[h.node, default: []].append(k)
        }
        for n in nodes {
            let start = j.hops[byNode[n]![0]].time
            byNode[n]!.sort {
                let a = Int64(bitPattern: j.hops[$0].time &- start)
                let b = Int64(bitPattern: j.hops[$1].time &- start)
                return a < b || (a == b && $0 < $1)
            }
        }
        func rank(_ n: UInt16) -> Int {
            let hops = byNode[n]!.map { j.hops[$0] }
            if hops.contains(where: { h in
                h.kind == .trace && (h.point == .fromEndpoint || h.point == .fromHost || h.point == .fromStack || h.point == .fromProxy)
            }) { return 0 }
            let p = hops[0].point
            return hops[0].kind == .trace && (p == .fromNetwork || p == .fromOverlay) ? 2 : 1
        }
        let reference = j.hops[0]
        func firstTime(_ n: UInt16) -> Double { interval(from: reference.time, on: reference.node, to: j.hops[byNode[n]![0]]) }
        let keyed = nodes.map { (node: $0, rank: rank($0), time: firstTime($0)) }
        let orderNodes = keyed.enumerated().sorted { a, b in
            (a.element.rank, a.element.time, a.offset) < (b.element.rank, b.element.time, b.offset)
        }.map(\.element.node)
        let idx = orderNodes.flatMap { byNode[$0]! }
        if idx.elementsEqual(j.hops.indices) { return }
        j.hops = idx.map { j.hops[$0] }
    }

    /// Outcome, expected hops missing, destination node and VNI.
    private func analyse(_ j: inout Journey) {
        j.missing.removeAll(keepingCapacity: true)
        let hops = j.hops
        guard let last = hops.last else { return }
        if let pod = pods.pod(at: j.key.destination) { j.destinationNode = index(of: pod.node) }
        if last.kind == .drop {
            j.outcome = .dropped
        } else if last.isTerminal {
            j.outcome = .delivered
        } else {
            j.outcome = .unfinished
        }
        // The first node's first hop: a packet enters from its pod (from-endpoint), or, from a pod of
        // another node, from the overlay.
        if let first = hops.first, !first.isEntry, first.kind == .trace,
            first.point == .toOverlay || first.point == .toEndpoint
        {
            var point = ObservationPoint.fromEndpoint
            if let pod = pods.pod(at: j.key.source), index(of: pod.node) != first.node { point = .fromOverlay }
            j.missing.append(MissingHop(node: first.node, point: point))
        }
        // A packet first seen arriving through the tunnel, from no known pod, while several nodes are
        // watched: its sender's hops are missing (a far node's events read first, as from Cilium's
        // sockets, before the settling time).
        if let first = hops.first, first.kind == .trace, first.point == .fromOverlay || first.tunnel != nil,
            pods.pod(at: j.key.source) == nil, nodeNames.count > 2
        {
            j.missing.append(MissingHop(node: Self.unknownNode, point: .toOverlay))
        }
        // A packet first seen arriving from the network or the overlay, from a pod of a node that is
        // watched (it sent events): that node's hops are missing.
        if let first = hops.first, first.kind == .trace, first.point == .fromNetwork || first.point == .fromOverlay,
            let pod = pods.pod(at: j.key.source), let home = nodeIndex(of: pod.node), home != first.node, home != 0
        {
            j.missing.append(MissingHop(node: home, point: .fromEndpoint))
            j.missing.append(MissingHop(node: home, point: .toOverlay))
        }
        // Each crossing from node A to node B: A's last hop sends to the overlay (or the network);
        // B receives from the network (when its underlay is traced), then from the overlay.
        var k = 0
        while k < hops.count {
            var end = k
            while end + 1 < hops.count && hops[end + 1].node == hops[k].node { end += 1 }
            if end + 1 < hops.count {
                let a = hops[end]
                let bNode = hops[end + 1].node
                if !(a.kind == .trace && (a.point == .toOverlay || a.point == .toNetwork)) {
                    j.missing.append(MissingHop(node: a.node, point: .toOverlay))
                }
                var m = end + 1
                var sawNetwork = false
                var sawOverlay = false
                while m < hops.count && hops[m].node == bNode && !(sawOverlay) {
                    if hops[m].point == .fromNetwork { sawNetwork = true }
                    if hops[m].point == .fromOverlay { sawOverlay = true }
                    m += 1
                }
                if tracesUnderlay(bNode) && !sawNetwork { j.missing.append(MissingHop(node: bNode, point: .fromNetwork)) }
                if !sawOverlay { j.missing.append(MissingHop(node: bNode, point: .fromOverlay)) }
            }
            k = end + 1
        }
        // A journey that stopped on its way names the hop that should have come next.
        if j.outcome == .unfinished, last.kind == .trace, let point = last.point {
            let home = j.destinationNode
            switch point {
            case .toOverlay, .toNetwork:
                // It left for the overlay: the far node's traces.
                let far = home.flatMap { $0 != last.node ? $0 : nil }
                if let far, tracesUnderlay(far), point == .toOverlay {
                    j.missing.append(MissingHop(node: far, point: .fromNetwork))
                }
                j.missing.append(MissingHop(node: far ?? Self.unknownNode, point: .fromOverlay))
            case .fromNetwork:
                j.missing.append(MissingHop(node: last.node, point: .fromOverlay))
                if home == last.node { j.missing.append(MissingHop(node: last.node, point: .toEndpoint)) }
            case .fromOverlay:
                if home == last.node { j.missing.append(MissingHop(node: last.node, point: .toEndpoint)) }
            case .fromEndpoint:
                // Left its pod: delivered on this node, or sent to the overlay.
                if let home { j.missing.append(MissingHop(node: last.node, point: home == last.node ? .toEndpoint : .toOverlay)) }
            default:
                break
            }
        }
        // The VNI: the VXLAN header's, else the identity the far node read from the tunnel key.
        j.vni = nil
        j.vniSource = .none
        if let h = hops.first(where: { $0.tunnel != nil }), let t = h.tunnel {
            j.vni = t.vni
            j.vniSource = .header
        } else if let h = hops.first(where: { $0.kind == .trace && $0.point == .fromOverlay }) {
            j.vni = h.sourceIdentity
            j.vniSource = .tunnelKey
        }
    }

    /// The node of a missing hop whose node is not known.
    public static let unknownNode = UInt16.max

    /// A request that crossed from A to B and its reply that came back: the four times of NTP.
    private func sampleClocks(request: Journey, reply: Journey) {
        guard let t1 = request.hops.last(where: { $0.point == .toOverlay && $0.kind == .trace }),
            let t2 = request.hops.first(where: { $0.point == .fromOverlay && $0.kind == .trace && $0.node != t1.node }),
            let t3 = reply.hops.last(where: { $0.point == .toOverlay && $0.kind == .trace && $0.node == t2.node }),
            let t4 = reply.hops.first(where: { $0.point == .fromOverlay && $0.kind == .trace && $0.node == t1.node })
        else { return }
        clocks.add(from: t1.node, to: t2.node, t1: t1.time, t2: t2.time, t3: t3.time, t4: t4.time)
    }
}
