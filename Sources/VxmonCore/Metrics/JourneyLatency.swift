/// `vxmon_journey_hop_latency_seconds{cross_node,from_point,to_point}`: a histogram of the time
/// between consecutive trace hops of every complete journey (`JourneyBuilder`: the events of one
/// packet on every node, delivered with every expected hop). `from_point` and `to_point` are Cilium's
/// observation point names; `cross_node` says whether the two hops were on different nodes (their
/// difference then includes the wire, and the two nodes' clocks: one kernel's in the lab).
///
/// A `JourneyOutput` on the agent's reader thread, like the counters (writer thread only).
public final class JourneyLatency: JourneyOutput {
    /// Upper bounds, in seconds: a hop inside one kernel takes microseconds, one across the wire tens.
    public static let buckets: [Double] = [
        0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.01, 0.1, 1,
    ]
    public let table: MetricTable
    private let release: CiliumRelease

    public init(release: CiliumRelease) {
        self.release = release
        table = MetricTable(
            name: "vxmon_journey_hop_latency_seconds",
            help: "Time from one trace hop of a packet's complete journey to the next (vxmon journey).",
            kind: .histogram(buckets: Self.buckets), labelNames: ["cross_node", "from_point", "to_point"], capacity: 64)
    }

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder) {
        for journey in journeys where journey.isComplete {
            var previous: JourneyHop?
            for hop in journey.hops {
                guard hop.kind == .trace, let to = hop.point else {
                    previous = nil
                    continue
                }
                defer { previous = hop }
                guard let from = previous, let fromPoint = from.point, hop.time >= from.time else { continue }
                let cross = from.node != hop.node
                let key = UInt64(fromPoint.rawValue) | UInt64(to.rawValue) << 8 | (cross ? 1 << 16 : 0)
                let s = table.slot(key) {
                    [cross ? "true" : "false", pointName(fromPoint), pointName(to)]
                }
                table.observe(s, Double(hop.time - from.time) / 1e9)
            }
        }
    }

    private func pointName(_ p: ObservationPoint) -> String {
        CiliumNames.observationPoint(p.rawValue, release).map { String(describing: $0) } ?? String(p.rawValue)
    }
}
