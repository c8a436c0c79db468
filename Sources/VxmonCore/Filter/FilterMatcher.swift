import VxmonWire

/// The filter engine: an `EventFilter` (the CLI's flags, or one of Hubble's `FlowFilter`s) compiled
/// for the per-event path and evaluated on a `Flow`. Clauses must all hold, a clause holds when one
/// of its terms does (negated clauses when none does). Each kind of term tests one field of the flow
/// in the reading the filter names (`FlowReading`); the tests themselves are in `Terms/`, one file
/// per kind. Pods are resolved to their addresses here, through the `PodDirectory` given (the
/// pipeline's, or the Hubble servers' copy of the lab's pods), so
/// the matcher is built again when the pods it names change. The terms live in one flat buffer of
/// plain values, so matching neither copies the filter nor retains anything. One thread uses a
/// matcher at a time (a pipeline's, or one GetFlows request's).
public final class FilterMatcher: @unchecked Sendable {
    enum Kind: UInt8 {
        case address, port, transport, icmp, arp, identity, vni, observationPoint, verdict, dropReason
        case interface, node, tcpFlags, direction, reply, eventType, ipVersion, encrypted, never
    }

    struct Term {
        var kind: Kind
        var side: FlowSide
        var prefix: IPPrefix
        var value: UInt32
        var value2: UInt32
    }

    private let terms: UnsafeMutableBufferPointer<Term>
    /// One past each clause's last term, and whether the clause is negated.
    private let clauseEnds: [Int]
    private let negated: [Bool]
    private let strings: [String]
    private let monitor: MonitorTerm?
    private let outer: Bool
    private let reading: FlowReading
    private let names: InterfaceNames?
    /// Where a reverse socket trace's Hubble stack is put together (so one matcher serves one thread
    /// at a time: each pipeline and each GetFlows request has its own).
    private let scratch: UnsafeMutablePointer<FlowLayers>

    public init(_ filter: EventFilter, pods: PodDirectory) {
        var list: [Term] = []
        var ends: [Int] = []
        var negated: [Bool] = []
        var strings: [String] = []
        let nothing = IPPrefix(address: .v4(IPv4Address(rawValue: 0)), length: 0)
        func term(_ kind: Kind, _ side: FlowSide = .either, prefix: IPPrefix? = nil, _ value: UInt32 = 0, _ value2: UInt32 = 0) -> Term {
            Term(kind: kind, side: side, prefix: prefix ?? nothing, value: value, value2: value2)
        }
        func string(_ s: String) -> UInt32 {
            strings.append(s)
            return UInt32(strings.count - 1)
        }
        for clause in filter.clauses {
            for t in clause.terms {
                switch t {
                case .ip(let p, let side): list.append(term(.address, side, prefix: p))
                case .pod(let selector, let side):
                    let addresses = AddressTerm.addresses(of: selector, in: pods)
                    if addresses.isEmpty { list.append(term(.never)) }
                    // value2 1: a pod's address (Hubble names no pods for socket traces).
                    for p in addresses { list.append(term(.address, side, prefix: p, 0, 1)) }
                case .port(let port, let side): list.append(term(.port, side, UInt32(port)))
                case .transport(let tr): list.append(term(.transport, .either, UInt32(tr.rawValue)))
                case .icmp: list.append(term(.icmp))
                case .arp: list.append(term(.arp))
                case .identity(let id, let side): list.append(term(.identity, side, id))
                case .vni(let v): list.append(term(.vni, .either, v))
                case .observationPoint(let p): list.append(term(.observationPoint, .either, UInt32(p.rawValue)))
                case .verdict(let v): list.append(term(.verdict, .either, UInt32(v.rawValue)))
                case .dropReason(let r): list.append(term(.dropReason, .either, UInt32(r)))
                case .interface(let index, let name):
                    // value: the index (0: any); value2: the name's string + 1 (0: any).
                    list.append(term(.interface, .either, index ?? 0, name.map { string($0) + 1 } ?? 0))
                case .node(let pattern): list.append(term(.node, .either, string(pattern)))
                case .tcpFlags(let set, let clear): list.append(term(.tcpFlags, .either, UInt32(set), UInt32(clear)))
                case .direction(let d): list.append(term(.direction, .either, UInt32(d.rawValue)))
                case .reply(let r): list.append(term(.reply, .either, r ? 1 : 0))
                case .eventType(let type, let sub):
                    // value: the type + 1 (0: any), value2: the subtype + 1 (0: any).
                    list.append(term(.eventType, .either, type.map { UInt32($0) + 1 } ?? 0, sub.map { UInt32($0) + 1 } ?? 0))
                case .ipVersion(let v): list.append(term(.ipVersion, .either, UInt32(v)))
                case .encrypted(let e): list.append(term(.encrypted, .either, e ? 1 : 0))
                case .uuid: list.append(term(.never))
                }
            }
            ends.append(list.count)
            negated.append(clause.negated)
        }
        terms = .allocate(capacity: max(list.count, 1))
        _ = terms.initialize(from: list)
        clauseEnds = ends
        self.negated = negated
        self.strings = strings
        monitor = MonitorTerm(filter)
        outer = filter.outer
        reading = filter.reading
        names = filter.names
        scratch = .allocate(capacity: 1)
        scratch.initialize(to: FlowLayers())
    }

    deinit {
        terms.deallocate()
        scratch.deinitialize(count: 1)
        scratch.deallocate()
    }

    /// Whether the flow at `flow` passes (read in place, not copied).
    public func matches(_ flow: UnsafePointer<Flow>) -> Bool { matches(flow, interface: nil) }

    /// The same, with the interface's name already resolved where the flow was stored (the Hubble
    /// servers resolve it at ingestion, on the pipeline's thread that owns the name table; a query's
    /// thread must not read that table).
    public func matches(_ flow: UnsafePointer<Flow>, interfaceName: String?) -> Bool {
        matches(flow, interface: .some(interfaceName))
    }

    /// `interface`: nil to look names up in the filter's table, else the flow's interface name.
    private func matches(_ flow: UnsafePointer<Flow>, interface: String??) -> Bool {
        if let monitor, !monitor.matches(flow) { return false }
        var start = 0
        for (c, end) in clauseEnds.enumerated() {
            var any = false
            var i = start
            while i < end {
                if matches(terms[i], flow, interface) {
                    any = true
                    break
                }
                i += 1
            }
            if any == negated[c] { return false }
            start = end
        }
        return true
    }

    private static let outerOffset = MemoryLayout<Flow>.offset(of: \Flow.outer)!
    private static let innerOffset = MemoryLayout<Flow>.offset(of: \Flow.inner)!

    /// The header stack the filter's reading tests: the monitor's (the summary's, or the outer
    /// headers with `--outer`) or Hubble's (the outer headers for 1.13, whose parser does not decode
    /// tunnels; the inner packet for latest).
    @inline(__always)
    private func stack(_ flow: UnsafePointer<Flow>) -> UnsafePointer<FlowLayers> {
        if flow.pointee.socketReverse, case .hubble = reading { return socketReply(flow) }
        let useOuter: Bool
        switch reading {
        case .monitor: useOuter = outer || !flow.pointee.primaryIsInner
        case .hubble(let release): useOuter = release == .v1_13 || !flow.pointee.primaryIsInner
        }
        return UnsafeRawPointer(flow).advanced(by: useOuter ? Self.outerOffset : Self.innerOffset)
            .assumingMemoryBound(to: FlowLayers.self)
    }

    /// A reverse socket trace in Hubble's reading: its one address as the source (`Flow.hubbleLayers`),
    /// in the matcher's scratch value.
    private func socketReply(_ flow: UnsafePointer<Flow>) -> UnsafePointer<FlowLayers> {
        scratch.pointee = flow.pointee.hubbleLayers(.latest)
        return UnsafePointer(scratch)
    }

    /// The source address the reading reports: Hubble's `IP.source` is a trace's original address
    /// where it gives one.
    @inline(__always)
    private func source(_ flow: UnsafePointer<Flow>, _ layers: UnsafePointer<FlowLayers>) -> IPAddress? {
        if case .hubble = reading, let original = flow.pointee.originalIP { return original }
        return layers.pointee.source
    }

    private func matches(_ t: Term, _ flow: UnsafePointer<Flow>, _ interface: String??) -> Bool {
        switch t.kind {
        case .address:
            if t.value2 == 1, case .hubble = reading, flow.pointee.type == MessageType.traceSock { return false }
            let layers = stack(flow)
            return AddressTerm.matches(t.prefix, t.side, source(flow, layers), layers.pointee.destination)
        case .port: return PortTerm.matches(UInt16(truncatingIfNeeded: t.value), t.side, stack(flow))
        case .transport: return ProtocolTerm.matches(FlowTransport(rawValue: UInt8(truncatingIfNeeded: t.value)), stack(flow))
        case .icmp: return ProtocolTerm.matchesICMP(stack(flow))
        case .arp: return ProtocolTerm.matchesARP(stack(flow))
        case .identity: return IdentityTerm.matches(t.value, t.side, flow, missingIsZero: reading != .monitor)
        case .vni: return TunnelTerm.matches(vni: t.value, flow)
        case .observationPoint: return ObservationPointTerm.matches(UInt8(truncatingIfNeeded: t.value), flow)
        case .verdict: return VerdictTerm.matches(UInt8(truncatingIfNeeded: t.value), flow)
        case .dropReason: return DropReasonTerm.matches(UInt8(truncatingIfNeeded: t.value), flow)
        case .interface:
            let name = t.value2 == 0 ? nil : strings[Int(t.value2 - 1)]
            return InterfaceTerm.matches(index: t.value, name: name, flow, reading: reading, names: names, resolved: interface)
        case .node: return NodeTerm.matches(strings[Int(t.value)], flow)
        case .tcpFlags:
            return TCPFlagsTerm.matches(
                set: UInt16(truncatingIfNeeded: t.value), clear: UInt16(truncatingIfNeeded: t.value2), stack(flow))
        case .direction: return DirectionTerm.matches(UInt8(truncatingIfNeeded: t.value), flow)
        case .reply: return ReplyTerm.matches(t.value != 0, flow)
        case .eventType: return EventTypeTerm.matches(type: t.value, subType: t.value2, flow)
        case .ipVersion:
            let layers = stack(flow)
            return IPVersionTerm.matches(UInt8(truncatingIfNeeded: t.value), source(flow, layers) ?? layers.pointee.destination)
        case .encrypted: return EncryptedTerm.matches(t.value != 0, flow)
        case .never: return false
        }
    }
}

/// A filter per Hubble's `GetFlows` request: a flow passes when it matches one of the whitelist's
/// filters (or there is none) and none of the blacklist's; each filter is one `FilterMatcher`.
public struct FilterSet: Sendable {
    public let whitelist: [FilterMatcher]
    public let blacklist: [FilterMatcher]

    public init(whitelist: [FilterMatcher], blacklist: [FilterMatcher]) {
        self.whitelist = whitelist
        self.blacklist = blacklist
    }

    /// `interfaceName`: the flow's interface name, resolved where it was stored.
    public func matches(_ flow: UnsafePointer<Flow>, interfaceName: String?) -> Bool {
        if !whitelist.isEmpty && !whitelist.contains(where: { $0.matches(flow, interfaceName: interfaceName) }) { return false }
        return !blacklist.contains { $0.matches(flow, interfaceName: interfaceName) }
    }
}
