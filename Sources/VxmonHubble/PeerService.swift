import GRPCCore

/// `peer.Peer`: every node of the lab, then its changes.
public struct PeerService: Peer_Peer.SimpleServiceProtocol {
    public let lab: HubbleLab

    public init(lab: HubbleLab) { self.lab = lab }

    public func notify(request: Peer_NotifyRequest, response: RPCWriter<Peer_ChangeNotification>, context: ServerContext)
        async throws
    {
        for await change in lab.subscribe() {
            try await response.write(change)
        }
    }
}
