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

    public init(rings: [String: FlowRing], pods: [PodInfo], names: InterfaceNames) {
        renderer = HubbleJSONRenderer(names: names)
        for pod in pods { renderer.learn(pod) }
        self.rings = rings
        allRings = Array(rings.values)
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

    public func metadata(key: String, value: String, time: UInt64) {
        if let pod = PodInfo(metadataKey: key, value: value) { renderer.learn(pod) }
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
