#if canImport(Glibc)
import Glibc
#endif
import VxmonWire

/// Output formats.
public enum OutputFormat: String, Sendable, CaseIterable {
    case text
    case json
    case yaml
}

/// Counters a source loop reports at the end.
public struct PipelineStats: Sendable {
    public var events = 0
    public var decodeErrors = 0
    public var lostSamples: UInt64 = 0
    public var lostRecords = 0
    public var malformedRecords = 0

    /// A one-line summary for stderr.
    public var summaryLine: String {
        var s = "vxmon: \(events) events"
        if decodeErrors > 0 { s += ", \(decodeErrors) skipped (undecodable)" }
        if malformedRecords > 0 { s += ", \(malformedRecords) malformed records" }
        s += ", \(lostSamples) samples lost"
        return s
    }
}

/// Decode -> render -> buffered write, shared by replay, the live monitor and the benchmark.
///
/// Diagnostics (decode errors with their position) go to `diagnostics`, never to the output.
public final class EventPipeline: RecordConsumer {
    public let decoder: EventDecoder
    public let format: OutputFormat
    public let text: TextRenderer
    public let structured: StructuredRenderer
    /// Where rendered records go. The parallel renderer points it at each batch's own buffer.
    public var out: OutputBuffer
    public let names: InterfaceNames
    public var stats = PipelineStats()
    /// Current node (set by `node=`/`host=` metadata or by the live source).
    public var node: String?
    /// Where diagnostics go (stderr by default).
    public var diagnostics: (String) -> Void
    /// Output file descriptor, or -1 to keep everything in `out` (tests).
    public let fd: Int32
    /// Flush after every record (a terminal), instead of in 64 KiB blocks.
    public var flushEachRecord: Bool
    /// Set when a write to `fd` failed (EPIPE: the reader went away).
    public private(set) var outputClosed = false
    public var shouldStop: Bool { outputClosed }
    /// The event being decoded, reused for every record. It lives behind a pointer so renderers can
    /// borrow it: reading a class `var` would copy the whole Event (and retain its arrays) per record.
    private let event: UnsafeMutablePointer<Event>

    public init(
        format: OutputFormat, verbosity: Verbosity = .info, hex: Bool = false, numeric: Bool = false,
        release: CiliumRelease = .v1_13, tunnelPorts: TunnelPorts = .standard, fd: Int32 = 1,
        flushEachRecord: Bool = false, names: InterfaceNames = InterfaceNames(),
        diagnostics: @escaping (String) -> Void = EventPipeline.standardError
    ) {
        self.names = names
        self.format = format
        decoder = EventDecoder(release: release, tunnelPorts: tunnelPorts)
        text = TextRenderer(verbosity: verbosity, hex: hex, numeric: numeric, release: release, names: names)
        structured = StructuredRenderer(release: release, names: names)
        out = OutputBuffer(capacity: 1 << 17)
        self.fd = fd
        self.flushEachRecord = flushEachRecord
        self.diagnostics = diagnostics
        event = .allocate(capacity: 1)
        event.initialize(to: Event())
    }

    deinit {
        event.deinitialize(count: 1)
        event.deallocate()
    }

    /// Writes `message` and a newline to stderr.
    public static func standardError(_ message: String) {
        var line = message
        line.append("\n")
        line.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
    }

    // MARK: RecordConsumer

    public func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        event.pointee.cpu = cpu
        event.pointee.timeNanoseconds = timeNanoseconds
        event.pointee.node = node
        do {
            try decoder.decode(body, into: &event.pointee)
        } catch {
            stats.decodeErrors += 1
            var where_ = "record \(index)"
            if offset >= 0 { where_ += " (byte offset \(offset))" }
            if let node { where_ += " from node \(node)" }
            diagnostics("vxmon: \(where_), CPU \(cpu): \(error); event skipped")
            return
        }
        stats.events += 1
        switch format {
        case .text: text.render(event.pointee, record: body, into: out)
        case .json: structured.renderJSON(event.pointee, record: body, into: out)
        case .yaml: structured.renderYAML(event.pointee, record: body, into: out)
        }
        afterRecord()
    }

    public func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
        stats.lostSamples &+= count
        stats.lostRecords += 1
        switch format {
        case .text: text.renderLost(cpu: cpu, count: count, into: out)
        case .json: structured.renderLostJSON(cpu: cpu, count: count, time: timeNanoseconds, node: node, into: out)
        case .yaml: structured.renderLostYAML(cpu: cpu, count: count, time: timeNanoseconds, node: node, into: out)
        }
        afterRecord()
    }

    public func interfaceName(ifindex: UInt32, name: String) {
        names.set(ifindex, name, node: node)
    }

    public func metadata(key: String, value: String) {
        if let named = Vxrec.node(fromMetadata: key, value) { node = named }
    }

    public func malformedRecord(index: Int, offset: Int, reason: String) {
        stats.malformedRecords += 1
        diagnostics("vxmon: record \(index) (byte offset \(offset)): \(reason); record skipped")
    }

    private func afterRecord() {
        guard fd >= 0 else { return }
        if flushEachRecord || out.count >= 1 << 16 { flush() }
    }

    /// Writes everything buffered. Returns false once the output is gone (EPIPE).
    @discardableResult
    public func flush() -> Bool {
        guard fd >= 0, !outputClosed else { return !outputClosed }
        if !out.flush(to: fd) {
            outputClosed = true
        }
        return !outputClosed
    }

    /// A one-line summary for stderr.
    public func summaryLine() -> String { stats.summaryLine }
}
