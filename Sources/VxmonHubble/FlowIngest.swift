import SwiftProtobuf
import VxmonCore

/// Turns the lab's events into Hubble flows, into each node's ring. A sink of the event pipeline:
/// every flow event goes into its node's ring as its `Flow` (what a query's filters read) and its
/// `HubbleFlow` (the one mapping from vxmon's `Flow` to `flow.Flow`, the same as `-o jsonpb --cilium
/// latest`), which `FlowBuilder` turns into a `GetFlowsResponse` when a reader takes it (no JSON in between, and no message for the flows a
/// flood overwrites unread); lost samples become lost-events entries in the ring of their node, as
/// Hubble reports them.
public final class FlowIngest: EventSink {
    private let pods: PodDirectory
    private let names: InterfaceNames
    private let rings: [String: FlowRing]
    private let fallback: FlowRing?
    private let allRings: [FlowRing]
    public private(set) var flows: UInt64 = 0
    /// Events of a node this process does not serve.
    public private(set) var unrouted = 0
    public var diagnostics: (String) -> Void = { EventPipeline.diagnostic($0) }

    /// `pods`: the pipeline's (it learns the pod records); the flows follow the latest flow API, the
    /// one `proto/` holds (`tunnel`, `trace_reason`).
    /// `fallback`: the ring of flows of no node served here (a benchmark's recording of one node).
    /// The flow API the flows follow: latest's (the servers'); tests also read with 1.13's.
    public let release: CiliumRelease

    public init(
        rings: [String: FlowRing], pods: PodDirectory, names: InterfaceNames, fallback: FlowRing? = nil,
        release: CiliumRelease = .latest
    ) {
        self.release = release
        self.fallback = fallback
        self.pods = pods
        self.names = names
        self.rings = rings
        allRings = Array(rings.values) + (fallback.map { [$0] } ?? [])
    }

    /// Decodes and encodes one flow with every kind of field the renderer writes: swift-protobuf
    /// builds its name tables on first use (hundreds of milliseconds in a debug build), which would
    /// otherwise delay the lab's first flows to their followers.
    @discardableResult
    public static func warmUp() -> Bool {
        let sample = #"""
            {"flow":{"time":"2026-01-01T00:00:00.000000001Z","verdict":"FORWARDED","drop_reason":0,            "ethernet":{"source":"02:00:00:00:00:01","destination":"02:00:00:00:00:02"},            "IP":{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4","encrypted":false},            "l4":{"TCP":{"source_port":1,"destination_port":2,"flags":{"SYN":true}}},            "tunnel":{"protocol":"VXLAN","IP":{"source":"172.18.0.2","destination":"172.18.0.3","ipVersion":"IPv4"},            "l4":{"UDP":{"source_port":1,"destination_port":8472}},"vni":1},            "source":{"ID":1,"identity":2,"namespace":"default","labels":["k8s:a=b"],"pod_name":"p"},            "destination":{"identity":3},"Type":"L3_L4","node_name":"n","is_reply":false,            "event_type":{"type":4,"sub_type":3},"traffic_direction":"EGRESS","trace_observation_point":"TO_OVERLAY",            "trace_reason":"NEW","drop_reason_desc":"POLICY_DENIED","interface":{"index":1,"name":"eth0"},            "debug_capture_point":"DBG_CAPTURE_DELIVERY","sock_xlate_point":"SOCK_XLATE_POINT_PRE_DIRECTION_FWD",            "Summary":"x"},"node_name":"n","time":"2026-01-01T00:00:00Z"}
            """#
        guard let response = try? Observer_GetFlowsResponse(jsonString: sample),
            let bytes: [UInt8] = try? response.serializedBytes(), !bytes.isEmpty
        else { return false }
        var lost = Observer_GetFlowsResponse()
        lost.lostEvents.source = .perfEventRingBuffer
        return (try? lost.jsonString()) != nil
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        guard let h = HubbleFlow(event, record: record, release: release, pods: pods, names: names) else { return }
        // Stored as the mapping; the message is built when a follower or a query reads it.
        guard let ring = rings[h.nodeName ?? ""] ?? fallback else {
            unrouted += 1
            return
        }
        flows &+= 1
        ring.append(event.flow, h)
    }

    public func lost(_ lost: LostSamples) {
        var r = Observer_GetFlowsResponse()
        r.lostEvents.source = .perfEventRingBuffer
        r.lostEvents.numEventsLost = lost.count
        r.lostEvents.cpu = Google_Protobuf_Int32Value(Int32(truncatingIfNeeded: lost.cpu))
        if let node = lost.node { r.nodeName = node }
        if lost.timeNanoseconds != 0 { r.time = FlowBuilder.timestamp(lost.timeNanoseconds) }
        store(r)
    }

    private func store(_ response: Observer_GetFlowsResponse) {
        guard let ring = rings[response.nodeName] ?? fallback else {
            unrouted += 1
            return
        }
        if case .flow = response.responseTypes { flows &+= 1 }
        ring.append(response)
    }

    public func flush() -> SinkStatus {
        for ring in allRings { ring.notify() }
        return .ok
    }
}
