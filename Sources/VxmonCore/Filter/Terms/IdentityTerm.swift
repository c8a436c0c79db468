/// `--identity`, `--from-identity`, `--to-identity` (Hubble: `source_identity`,
/// `destination_identity`): the security identities the decoder resolved (the datapath's, else the
/// pod's at the flow's address).
enum IdentityTerm {
    @inline(__always)
    /// `missingIsZero`: Hubble's reading, where a flow without an identity has identity 0.
    static func matches(_ identity: UInt32, _ side: FlowSide, _ flow: UnsafePointer<Flow>, missingIsZero: Bool) -> Bool {
        var source = flow.pointee.sourceIdentity
        var destination = flow.pointee.destinationIdentity
        if missingIsZero {
            source = source ?? 0
            destination = destination ?? 0
        }
        return side.test(source, destination) { $0 == identity }
    }
}
