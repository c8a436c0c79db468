/// `--identity`, `--from-identity`, `--to-identity` (Hubble: `source_identity`,
/// `destination_identity`): the security identities the decoder resolved (the datapath's, else the
/// pod's at the flow's address).
enum IdentityTerm {
    @inline(__always)
    static func matches(_ identity: UInt32, _ side: FlowSide, _ flow: UnsafePointer<Flow>) -> Bool {
        side.test(flow.pointee.sourceIdentity, flow.pointee.destinationIdentity) { $0 == identity }
    }
}
