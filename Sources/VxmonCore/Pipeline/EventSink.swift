/// Samples the kernel (or a recording, or an agent) reported lost.
public struct LostSamples: Sendable {
    public var cpu: Int
    public var count: UInt64
    public var timeNanoseconds: UInt64
    public var node: String?

    public init(cpu: Int, count: UInt64, timeNanoseconds: UInt64, node: String?) {
        self.cpu = cpu
        self.count = count
        self.timeNanoseconds = timeNanoseconds
        self.node = node
    }
}

/// Where events go once they are decoded and have passed the filter: the renderers (text, JSON,
/// YAML), the recording writer, the pcapng writer. A pipeline can have several.
///
/// Every call happens on the pipeline's thread; `record` and the event are valid only during the call.
public protocol EventSink: AnyObject {
    /// An event that passed the filter, with the raw sample it was decoded from.
    func event(_ event: borrowing Event, record: RawSpan)
    /// Lost samples (never filtered).
    func lost(_ lost: LostSamples)
    /// An interface name of `node` (records that carry them: recordings, live sessions).
    func interfaceName(ifindex: UInt32, name: String, node: String?, time: UInt64)
    /// A metadata record (`key=value`), e.g. the node or a pod of a recording.
    func metadata(key: String, value: String, time: UInt64)
    /// Writes what is buffered.
    func flush() -> SinkStatus
}

extension EventSink {
    public func interfaceName(ifindex: UInt32, name: String, node: String?, time: UInt64) {}
    public func metadata(key: String, value: String, time: UInt64) {}
    public func flush() -> SinkStatus { .ok }
}

/// The state of a sink's output after a write.
public enum SinkStatus: Sendable, Equatable {
    case ok
    /// The reader went away (EPIPE): stop quietly.
    case closed
    /// Any other write error, with its errno.
    case failed(Int32)
}

extension UInt64 {
    /// Adds without wrapping: a counter fed by numbers from outside (lost-sample counts) stops at
    /// the maximum instead of starting again from zero.
    @inline(__always)
    public static func +| (a: UInt64, b: UInt64) -> UInt64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }

    @inline(__always)
    public static func +|= (a: inout UInt64, b: UInt64) { a = a +| b }
}

infix operator +| : AdditionPrecedence
infix operator +|= : AssignmentPrecedence
