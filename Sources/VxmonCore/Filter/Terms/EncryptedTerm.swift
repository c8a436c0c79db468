/// Hubble's `encrypted` (`Flow.encrypted`, a trace's encrypt bit).
enum EncryptedTerm {
    @inline(__always)
    static func matches(_ encrypted: Bool, _ flow: UnsafePointer<Flow>) -> Bool { flow.pointee.encrypted == encrypted }
}
