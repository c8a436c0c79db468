import VxmonWire

/// Hubble's `ip_version`: 4 or 6 for the flow's IP header in the filter's reading (the version of its
/// source, else of its destination), 0 without one.
enum IPVersionTerm {
    @inline(__always)
    static func matches(_ version: UInt8, _ address: IPAddress?) -> Bool {
        switch address {
        case .v4?: version == 4
        case .v6?: version == 6
        case nil: version == 0
        }
    }
}
