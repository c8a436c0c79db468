/// `--observation-point`: where a trace was emitted (Cilium's `to-overlay`, Hubble's `TO_OVERLAY`).
enum ObservationPointTerm {
    @inline(__always)
    static func matches(_ point: UInt8, _ flow: UnsafePointer<Flow>) -> Bool {
        flow.pointee.observationPoint.map { $0.rawValue == point } ?? false
    }
}
