/// Hubble's `ip_version`: 4 or 6 for the IP header of the stack the reading tests, 0 without one.
enum IPVersionTerm {
    @inline(__always)
    static func matches(_ version: UInt8, _ layers: UnsafePointer<FlowLayers>) -> Bool {
        switch layers.pointee.source {
        case .v4?: version == 4
        case .v6?: version == 6
        case nil: version == 0
        }
    }
}
