/// `--tcp-flags SYN,!ACK` (Hubble: `tcp_flags`, flags that must be set): a TCP packet of the stack the
/// reading tests with every flag of `set` set and every flag of `clear` clear.
enum TCPFlagsTerm {
    @inline(__always)
    static func matches(set: UInt16, clear: UInt16, _ layers: UnsafePointer<FlowLayers>) -> Bool {
        layers.pointee.transport == .tcp && layers.pointee.tcpFlags & set == set && layers.pointee.tcpFlags & clear == 0
    }
}
