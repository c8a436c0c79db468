/// Hubble's `traffic_direction` (`Flow.trafficDirection`).
enum DirectionTerm {
    @inline(__always)
    static func matches(_ direction: UInt8, _ flow: UnsafePointer<Flow>) -> Bool {
        flow.pointee.trafficDirection.rawValue == direction
    }
}
