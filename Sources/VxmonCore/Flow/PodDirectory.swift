import VxmonWire

/// The pods a pipeline knows (the lab's, or a recording's pod records), by address: the decoder
/// resolves the local endpoint of a flow's source through it (Hubble's traffic direction), and the
/// Hubble renderer names `source`/`destination` with it, and filters resolve `--pod` through it. One
/// per pipeline, learned from `pod` metadata as it arrives and read on the pipeline's thread only;
/// the Hubble servers keep a second one of the lab's pods, learned once before any query and only
/// read after, for their queries' pod filters.
public final class PodDirectory: @unchecked Sendable {
    public private(set) var byIP: [IPAddress: PodInfo] = [:]
    /// Some pod has an endpoint ID (recordings made before pod records had them have none).
    public private(set) var hasEndpoints = false
    /// At most this many addresses are kept (pod records come from outside).
    public static let capacity = 65536

    public init() {}

    /// Learns `pod`, with its labels as Hubble lists them: sorted, with the namespace's.
    public func learn(_ pod: PodInfo) {
        var pod = pod
        let namespaceLabel = "k8s:io.kubernetes.pod.namespace=" + pod.namespace
        if !pod.labels.contains(namespaceLabel) { pod.labels.append(namespaceLabel) }
        pod.labels.sort()
        if byIP.count < Self.capacity || byIP[pod.ip] != nil { byIP[pod.ip] = pod }
        if pod.endpoint != 0 { hasEndpoints = true }
    }

    @inline(__always)
    public func pod(at ip: IPAddress?) -> PodInfo? {
        guard let ip, !byIP.isEmpty else { return nil }
        return byIP[ip]
    }

    /// The pods `selector` names (a filter's `--pod`, Hubble's `source_pod`), by namespace and name.
    public func pods(matching selector: PodSelector) -> [PodInfo] {
        byIP.values.filter { selector.matches($0) }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
    }

    /// Every pod known, by namespace and name.
    public var all: [PodInfo] { byIP.values.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) } }

    /// The endpoint ID of the pod at `ip` if it lives on `node` (a local endpoint, as Hubble's endpoint
    /// getter resolves it), 0 otherwise.
    @inline(__always)
    public func localEndpoint(_ ip: IPAddress?, node: String?) -> UInt16 {
        guard hasEndpoints, let pod = pod(at: ip), pod.node == node else { return 0 }
        return pod.endpoint
    }
}
