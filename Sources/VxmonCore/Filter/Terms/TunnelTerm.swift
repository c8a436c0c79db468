/// `--vni`: the VNI of a VXLAN or Geneve packet (in Cilium's VXLAN mode, the source pod's identity).
enum TunnelTerm {
    @inline(__always)
    static func matches(vni: UInt32, _ flow: UnsafePointer<Flow>) -> Bool { flow.pointee.tunnel?.vni == vni }
}
