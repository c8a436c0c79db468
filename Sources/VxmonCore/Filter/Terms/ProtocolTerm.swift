/// `--protocol` (Hubble: `protocol`): the transport of the stack the reading tests; `icmp` is either
/// ICMP, `arp` an Ethernet frame of EtherType 0x0806.
enum ProtocolTerm {
    @inline(__always)
    static func matches(_ transport: FlowTransport?, _ layers: UnsafePointer<FlowLayers>) -> Bool {
        layers.pointee.transport == transport
    }

    @inline(__always)
    static func matchesICMP(_ layers: UnsafePointer<FlowLayers>) -> Bool {
        layers.pointee.transport == .icmpv4 || layers.pointee.transport == .icmpv6
    }

    @inline(__always)
    static func matchesARP(_ layers: UnsafePointer<FlowLayers>) -> Bool {
        layers.pointee.hasEthernet && layers.pointee.etherType == 0x0806
    }
}
