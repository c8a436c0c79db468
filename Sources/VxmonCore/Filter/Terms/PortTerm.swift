/// `--port`, `--from-port`, `--to-port` (Hubble: `source_port`, `destination_port`): a TCP, UDP or
/// SCTP port of the stack the reading tests.
enum PortTerm {
    @inline(__always)
    static func matches(_ port: UInt16, _ side: FlowSide, _ layers: UnsafePointer<FlowLayers>) -> Bool {
        guard layers.pointee.transport.hasPorts else { return false }
        return side.test(layers.pointee.sourcePort, layers.pointee.destinationPort) { $0 == port }
    }
}
