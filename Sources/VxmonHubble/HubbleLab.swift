import Synchronization
import VxmonCore

/// What every node's servers know of the lab: its nodes, their addresses and rings.
public final class HubbleLab: Sendable {
    public struct Node: Sendable {
        public var name: String
        /// "ip:port" of its observer.
        public var address: String
        public var ring: FlowRing
    }

    public let nodes: [Node]
    public let version: String
    /// Whether the servers speak TLS: Peer/Notify then gives each node its TLS server name, as
    /// Cilium's Peer service does (a Relay checks the node's certificate against it).
    public let tls: Bool
    /// The lab's pods, for the queries' pod filters: learned once here and only read after (the
    /// pipeline's own directory belongs to its thread).
    public let pods: PodDirectory
    private let peerState: Mutex<[String: String]>
    /// Peer-change subscribers (Peer/Notify streams).
    private let subscribers = Mutex<[Int: AsyncStream<Peer_ChangeNotification>.Continuation]>([:])
    private let nextSubscriber = Atomic<Int>(0)

    public init(nodes: [Node], version: String, pods: [PodInfo] = [], tls: Bool = false) {
        self.nodes = nodes
        self.version = version
        self.tls = tls
        let directory = PodDirectory()
        for pod in pods { directory.learn(pod) }
        self.pods = directory
        peerState = Mutex(Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.address) }))
    }

    /// Sets the lab's peers (from its topology) and tells every Notify stream what changed.
    public func updatePeers(_ current: [String: String]) {
        let changes: [Peer_ChangeNotification] = peerState.withLock { old in
            var out: [Peer_ChangeNotification] = []
            for (name, address) in current.sorted(by: { $0.key < $1.key }) {
                if let before = old[name] {
                    if before != address { out.append(change(name, address, .peerUpdated)) }
                } else {
                    out.append(change(name, address, .peerAdded))
                }
            }
            for (name, address) in old.sorted(by: { $0.key < $1.key }) where current[name] == nil {
                out.append(change(name, address, .peerDeleted))
            }
            old = current
            return out
        }
        guard !changes.isEmpty else { return }
        for subscriber in subscribers.withLock({ Array($0.values) }) {
            for change in changes { subscriber.yield(change) }
        }
    }

    func change(_ name: String, _ address: String, _ type: Peer_ChangeNotificationType) -> Peer_ChangeNotification {
        var c = Peer_ChangeNotification()
        c.name = name
        c.address = address
        c.type = type
        if tls { c.tls.serverName = HubbleTLS.serverName(node: name) }
        return c
    }

    /// Tells every Notify stream that every node is gone (PEER_DELETED), then ends the streams.
    public func close() {
        updatePeers([:])
        let all = subscribers.withLock { s in
            defer { s = [:] }
            return Array(s.values)
        }
        for subscriber in all { subscriber.finish() }
    }

    /// The current peers as PEER_ADDED, then every change, until the stream is dropped.
    func subscribe() -> AsyncStream<Peer_ChangeNotification> {
        let (stream, continuation) = AsyncStream<Peer_ChangeNotification>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let id = nextSubscriber.add(1, ordering: .relaxed).oldValue
        // Registered and primed under the peer lock, so no change falls between the two.
        peerState.withLock { peers in
            for (name, address) in peers.sorted(by: { $0.key < $1.key }) {
                continuation.yield(change(name, address, .peerAdded))
            }
            subscribers.withLock { $0[id] = continuation }
        }
        continuation.onTermination = { [weak self] _ in _ = self?.subscribers.withLock { $0.removeValue(forKey: id) } }
        return stream
    }
}
