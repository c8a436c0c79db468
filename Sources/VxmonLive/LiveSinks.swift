import Glibc
import VxmonCore

/// Where a live session delivers what it reads. Every call happens on the session's polling thread.
public protocol LiveSink: AnyObject {
    /// An interface name of node `node` (an index into the session's `nodeNames`), given for every
    /// interface at start and for every new one learned later.
    func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64)
    /// A raw monitor sample (notify header + captured packet, perhaps kernel padding). `bytes` is
    /// valid only during the call.
    func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64)
    /// `count` samples lost on `cpu` of node `node`.
    func lost(node: Int, cpu: Int, count: UInt64, time: UInt64)
    /// Writes what is buffered; false once the output is gone (EPIPE), or the sink wants no more.
    func flush() -> Bool
    /// Why the sink wants no more, when that is not a closed output (e.g. `--count` reached).
    var stopReason: String? { get }
}

extension LiveSink {
    public var stopReason: String? { nil }
}

/// Renders live events through the shared `EventPipeline` (decode, render, buffered write), exactly
/// as `vxmon replay` renders a recording.
public final class PipelineSink: LiveSink {
    public let pipeline: EventPipeline
    private let nodeNames: [String]
    private var currentNode = -1
    private var index = 0

    public init(pipeline: EventPipeline, nodeNames: [String]) {
        self.pipeline = pipeline
        self.nodeNames = nodeNames
    }

    private func select(_ node: Int) {
        // Assigning the node name per event would retain/release a String per event.
        if node != currentNode {
            currentNode = node
            pipeline.node = nodeNames[node].isEmpty ? nil : nodeNames[node]
        }
    }

    public func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64) {
        select(node)
        pipeline.interfaceName(ifindex: ifindex, name: name, time: time)
    }

    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
        select(node)
        index &+= 1
        pipeline.sample(bytes.bytes, cpu: cpu, timeNanoseconds: time, index: index, offset: -1)
    }

    public func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
        select(node)
        pipeline.lost(cpu: cpu, count: count, timeNanoseconds: time)
    }

    public func flush() -> Bool { pipeline.flush() }

    public var stopReason: String? {
        if let maxEvents = pipeline.maxEvents, pipeline.stats.matched >= maxEvents { return "count reached" }
        return nil
    }
}

/// Records live samples as they are read, without decoding them, through the recorder
/// (`VxrecWriter`): what `vxmon record` does without a filter.
public final class RecorderSink: LiveSink {
    public let writer: VxrecWriter
    private let nodeNames: [String]
    private var currentNode = -1

    public init(fd: Int32, nodeNames: [String], metadata: [(String, String)] = []) {
        writer = VxrecWriter(output: FileOutput(fd: fd))
        self.nodeNames = nodeNames
        let now = wallClockNanoseconds()
        for (key, value) in metadata { writer.metadata(key, value, time: now) }
    }

    /// The node's name goes to the recorder only when the index changes (no string per sample).
    private func select(_ node: Int, _ time: UInt64) {
        if node != currentNode {
            currentNode = node
            writer.node(nodeNames[node], time: time)
        }
    }

    public func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64) {
        select(node, time)
        writer.interfaceName(ifindex, name, time: time)
    }

    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
        select(node, time)
        writer.sample(bytes, cpu: cpu, time: time)
    }

    public func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
        select(node, time)
        writer.lost(cpu: cpu, count: count, time: time)
    }

    public func flush() -> Bool { writer.flush() }
}
