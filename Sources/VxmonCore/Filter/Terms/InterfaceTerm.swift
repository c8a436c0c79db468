/// `--interface` (Hubble: `interface`): the interface the datapath reported, by index, by name on the
/// event's node, or both (each must match when given). Hubble's reading has none for drops. The
/// name is the filter's table's, or the one resolved where the flow was stored (`resolved`).
enum InterfaceTerm {
    static func matches(
        index: UInt32, name: String?, _ flow: UnsafePointer<Flow>, reading: FlowReading, names: InterfaceNames?,
        resolved: String??
    ) -> Bool {
        let ifindex: UInt32
        switch reading {
        case .monitor: ifindex = flow.pointee.ifindex ?? 0
        case .hubble: ifindex = flow.pointee.hubbleInterfaceIndex
        }
        guard ifindex != 0 else { return false }
        if index != 0 && index != ifindex { return false }
        if let name {
            let have = resolved ?? names?.name(ifindex, node: flow.pointee.node)
            guard have == name else { return false }
        }
        return true
    }
}
