/// Hubble's `event_type`: Cilium's message type, and the notify header's subtype when the filter
/// names one (`subType`: the subtype + 1, 0 for any).
enum EventTypeTerm {
    @inline(__always)
    static func matches(type: UInt32, subType: UInt32, _ flow: UnsafePointer<Flow>) -> Bool {
        UInt32(flow.pointee.type.rawValue) == type && (subType == 0 || UInt32(flow.pointee.subType) + 1 == subType)
    }
}
