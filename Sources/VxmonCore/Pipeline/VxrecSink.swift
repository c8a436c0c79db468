
/// Writes the events that passed the filter to a `.vxrec` recording, with every lost, interface-name
/// and metadata record (those are never filtered), and a `node=` record whenever the node changes.
public final class VxrecSink: EventSink {
    public let writer: VxrecWriter
    private var currentNode: String?
    private var started = false
    public private(set) var samples = 0

    public init(output: ByteOutput, metadata: [(String, String)] = [], time: UInt64 = 0) {
        writer = VxrecWriter(output: output)
        for (key, value) in metadata { writer.metadata(key, value, time: time) }
    }

    private func select(_ node: String?, _ time: UInt64) {
        if !started || node != currentNode {
            started = true
            currentNode = node
            writer.metadata("node", node ?? "", time: time)
        }
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        select(event.node, event.timeNanoseconds)
        samples += 1
        record.withUnsafeBytes { writer.sample($0, cpu: event.cpu, time: event.timeNanoseconds) }
    }

    public func lost(_ lost: LostSamples) {
        select(lost.node, lost.timeNanoseconds)
        writer.lost(cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds)
    }

    public func interfaceName(ifindex: UInt32, name: String, node: String?, time: UInt64) {
        select(node, time)
        writer.interfaceName(ifindex, name, time: time)
    }

    public func metadata(key: String, value: String, time: UInt64) {
        if Vxrec.node(fromMetadata: key, value) != nil { return }  // written by select()
        writer.metadata(key, value, time: time)
    }

    public func flush() -> SinkStatus {
        writer.flush()
        return writer.status
    }
}
