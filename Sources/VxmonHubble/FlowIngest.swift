import SwiftProtobuf
import VxmonBPF
import VxmonCore

/// Turns the lab's events into Hubble flows, into each node's ring. A sink of the event pipeline:
/// every flow event is rendered by `HubbleJSONRenderer` (the one mapping from vxmon's `Flow` to
/// `flow.Flow`, the same as `-o jsonpb`) and parsed into a `GetFlowsResponse`; lost samples become
/// lost-events entries in the ring of their node, as Hubble reports them.
public final class FlowIngest: EventSink {
    private let renderer: HubbleJSONRenderer
    private let out = OutputBuffer(capacity: 1 << 16)
    private let rings: [String: FlowRing]
    private let allRings: [FlowRing]
    /// Rendered records that did not parse back (a renderer bug; counted and shown, never silent).
    public private(set) var unparsed = 0
    public private(set) var flows: UInt64 = 0
    /// Events of a node this process does not serve.
    public private(set) var unrouted = 0
    public var diagnostics: (String) -> Void = { EventPipeline.standardError($0) }

    /// `pods`: the pipeline's (it learns the pod records); the flows follow the latest flow API, the
    /// one `proto/` holds (`tunnel`, `trace_reason`).
    public init(rings: [String: FlowRing], pods: PodDirectory, names: InterfaceNames) {
        renderer = HubbleJSONRenderer(names: names, pods: pods, release: .latest)
        self.rings = rings
        allRings = Array(rings.values)
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
        out.removeAll()
        renderer.render(event, record: record, into: out)
        store()
    }

    public func lost(_ lost: LostSamples) {
        out.removeAll()
        renderer.renderLost(cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds, node: lost.node, into: out)
        store()
    }

    private func store() {
        guard out.count > 0 else { return }
        let response: Observer_GetFlowsResponse
        do {
            response = try Observer_GetFlowsResponse(jsonUTF8Bytes: Array(out.bytes))
        } catch {
            unparsed += 1
            if unparsed <= 10 {
                diagnostics("vxmon-hubble: a rendered flow did not parse (\(error)): \(EventPipeline.sanitized(out.string))")
            }
            return
        }
        guard let ring = rings[response.nodeName] else {
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
