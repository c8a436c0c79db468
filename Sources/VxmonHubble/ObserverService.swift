import GRPCCore
import SwiftProtobuf
import VxmonCore
import VxmonLive

/// `observer.Observer` for one node: its flows from its ring.
public struct ObserverService: Observer_Observer.SimpleServiceProtocol {
    public let lab: HubbleLab
    public let node: HubbleLab.Node
    /// Entries sent per lock of the ring.
    static let batch = 512

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

    public func getFlows(
        request: Observer_GetFlowsRequest, response: RPCWriter<Observer_GetFlowsResponse>, context: ServerContext
    ) async throws {
        let query = try FlowQuery(request, pods: lab.pods)
        let ring = node.ring
        // Registered before the history is read, so nothing appended in between is missed.
        let updates = query.follow ? ring.updates() : nil
        var cursor = try await sendHistory(query, ring: ring, response: response)
        guard let updates else { return }
        // Messages are built only for the flows the query admits.
        let builder = FlowBuilder()
        for await _ in updates {
            while true {
                let (entries, missed) = ring.entries(from: cursor, limit: Self.batch)
                if missed > 0 {
                    // Overwritten before this follower got to them: told once, as Hubble does.
                    cursor += missed
                    try await response.write(Self.lostNotice(missed, node: node.name))
                }
                guard let last = entries.last else { break }
                cursor = last.0 + 1
                var out: [Observer_GetFlowsResponse] = []
                for (_, entry) in entries where query.admits(entry) {
                    if query.isAfterUntil(entry) {
                        try await response.write(contentsOf: out)
                        return
                    }
                    out.append(FlowRing.build(entry, builder))
                }
                try await response.write(contentsOf: out)
                if entries.count < Self.batch { break }
            }
        }
    }

    /// The flows already held that the query asks for; returns where following goes on.
    func sendHistory(
        _ query: FlowQuery, ring: FlowRing, response: RPCWriter<Observer_GetFlowsResponse>
    ) async throws -> UInt64 {
        let window = ring.window
        let snapshot = ring.entries(from: window.lowerBound, limit: ring.capacity).entries
        let end = snapshot.last.map { $0.0 + 1 } ?? window.upperBound
        var chosen: [FlowRing.Entry] = []
        if query.first {
            chosen = try Self.select(snapshot, query, limit: query.number)
        } else if query.number > 0 {
            chosen = try Self.select(snapshot.reversed(), query, limit: query.number).reversed()
        } else if !query.follow || query.since != nil {
            chosen = try Self.select(snapshot, query, limit: 0)
        }
        let builder = FlowBuilder()
        var i = 0
        while i < chosen.count {
            let j = min(i + Self.batch, chosen.count)
            try await response.write(contentsOf: chosen[i..<j].map { FlowRing.build($0, builder) })
            i = j
        }
        return end
    }

    /// The entries of `entries` the query admits, in that order, at most `limit` (0: all). The walk
    /// stops when the client has gone (checked every batch of entries), so an abandoned request costs
    /// nothing more.
    static func select(
        _ entries: some Sequence<(UInt64, FlowRing.Entry)>, _ query: FlowQuery, limit: Int
    ) throws -> [FlowRing.Entry] {
        var chosen: [FlowRing.Entry] = []
        var walked = 0
        for (_, entry) in entries {
            walked &+= 1
            if walked % batch == 0 { try Task.checkCancellation() }
            guard query.admits(entry), !query.isAfterUntil(entry) else { continue }
            chosen.append(entry)
            if limit > 0 && chosen.count >= limit { break }
        }
        return chosen
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
