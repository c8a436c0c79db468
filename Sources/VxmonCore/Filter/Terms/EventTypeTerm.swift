/// Hubble's `event_type`: Cilium's message type (type 0 in a filter means any type, as in Hubble)
/// and the notify header's subtype when the filter names one. `type` and `subType` are the values
/// + 1, 0 for any.
enum EventTypeTerm {
    @inline(__always)
    static func matches(type: UInt32, subType: UInt32, _ flow: UnsafePointer<Flow>) -> Bool {
        (type == 0 || UInt32(flow.pointee.type.rawValue) + 1 == type)
            && (subType == 0 || UInt32(flow.pointee.subType) + 1 == subType)
    }
}
