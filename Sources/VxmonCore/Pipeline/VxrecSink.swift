
/// Records the events that passed the filter (through the recorder, `VxrecWriter`), with every lost,
/// interface-name and metadata record (those are never filtered).
public final class VxrecSink: EventSink {
    public let writer: VxrecWriter

    public init(output: ByteOutput, metadata: [(String, String)] = [], time: UInt64 = 0) {
        writer = VxrecWriter(output: output)
        for (key, value) in metadata { writer.metadata(key, value, time: time) }
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        writer.node(event.node, time: event.timeNanoseconds)
        record.withUnsafeBytes { writer.sample($0, cpu: event.cpu, time: event.timeNanoseconds) }
    }

    public func lost(_ lost: LostSamples) {
        writer.node(lost.node, time: lost.timeNanoseconds)
        writer.lost(cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds)
    }

    public func interfaceName(ifindex: UInt32, name: String, node: String?, time: UInt64) {
        writer.node(node, time: time)
        writer.interfaceName(ifindex, name, time: time)
    }

    public func metadata(key: String, value: String, time: UInt64) {
        if Vxrec.node(fromMetadata: key, value) != nil { return }  // the recorder writes it (`node`)
        writer.metadata(key, value, time: time)
    }

    public func flush() -> SinkStatus {
        writer.flush()
        return writer.status
    }
}
