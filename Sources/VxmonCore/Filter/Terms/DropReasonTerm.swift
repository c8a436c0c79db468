/// `--drop-reason` (Hubble: `drop_reason_desc`, whose values are Cilium's drop reason codes): a
/// drop's reason, or a policy verdict's denial.
enum DropReasonTerm {
    @inline(__always)
    static func matches(_ reason: UInt8, _ flow: UnsafePointer<Flow>) -> Bool {
        flow.pointee.dropReason.map { $0 == reason } ?? false
    }
}
