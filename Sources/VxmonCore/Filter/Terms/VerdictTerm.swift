/// `--verdict` (Hubble: `verdict`): Hubble's verdict (`Flow.verdict`), the one the counters and the
/// Hubble flows show.
enum VerdictTerm {
    @inline(__always)
    static func matches(_ verdict: UInt8, _ flow: UnsafePointer<Flow>) -> Bool { flow.pointee.verdict.rawValue == verdict }
}
