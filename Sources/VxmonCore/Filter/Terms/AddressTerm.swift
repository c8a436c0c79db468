import VxmonWire

/// `--ip`, `--from-ip`, `--to-ip`, `--pod` (Hubble: `source_ip`, `destination_ip`, `source_pod`,
/// `destination_pod`): an address of the stack the reading tests in a prefix. A pod is its address:
/// Hubble names a flow's endpoints by the pod at each address, the CLI resolves the name it is given.
enum AddressTerm {
    @inline(__always)
    static func matches(_ prefix: IPPrefix, _ side: FlowSide, _ source: IPAddress?, _ destination: IPAddress?) -> Bool {
        side.test(source, destination) { prefix.contains($0) }
    }

    /// The addresses of the pods `selector` names (none: the term matches nothing).
    static func addresses(of selector: PodSelector, in pods: PodDirectory) -> [IPPrefix] {
        pods.pods(matching: selector).map { pod in
            switch pod.ip {
            case .v4: IPPrefix(address: pod.ip, length: 32)
            case .v6: IPPrefix(address: pod.ip, length: 128)
            }
        }
    }
}
