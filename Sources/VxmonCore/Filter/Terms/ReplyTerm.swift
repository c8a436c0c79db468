/// Hubble's `reply` (`Flow.isReply`): a flow whose reply state is unknown matches neither value.
enum ReplyTerm {
    @inline(__always)
    static func matches(_ reply: Bool, _ flow: UnsafePointer<Flow>) -> Bool { flow.pointee.isReply == reply }
}
