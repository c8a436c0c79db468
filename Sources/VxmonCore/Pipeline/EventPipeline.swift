import VxmonWire

/// Output formats.
public enum OutputFormat: String, Sendable, CaseIterable {
    case text
    case json
    case yaml
    /// Hubble's `GetFlowsResponse` in protobuf JSON, one per line (`hubble observe -o jsonpb`).
    case jsonpb
    /// No rendered output (only the other sinks, e.g. `--write-pcap`).
    case none
}

/// Counters a source loop reports at the end.
public struct PipelineStats: Sendable {
    public init() {}
    /// Events decoded.
    public var events = 0
    /// Decoded events the filter rejected.
    public var filtered = 0
    public var decodeErrors = 0
    public var lostSamples: UInt64 = 0
    public var lostRecords = 0
    public var malformedRecords = 0

    /// Events that passed the filter (rendered, written).
    public var matched: Int { events - filtered }

    public mutating func add(_ other: PipelineStats) {
        events += other.events
        filtered += other.filtered
        decodeErrors += other.decodeErrors
        lostSamples +|= other.lostSamples
        lostRecords += other.lostRecords
        malformedRecords += other.malformedRecords
    }

    /// A one-line summary for stderr.
    public var summaryLine: String {
        var s = "vxmon: \(events) events"
        if filtered > 0 { s += " (\(matched) matched the filter, \(filtered) filtered out)" }
        if decodeErrors > 0 { s += ", \(decodeErrors) skipped (undecodable)" }
        if malformedRecords > 0 { s += ", \(malformedRecords) malformed records" }
        s += ", \(lostSamples) samples lost"
        return s
    }
}

/// Decode -> flow -> filter -> sinks, shared by replay, the live monitor, the recorder and the
/// benchmark: `RecordSource -> EventDecoder -> Event + Flow -> EventFilter -> [EventSink]`.
///
/// The rendering sink for `format` writes into `out`, which the pipeline writes to `output`; other sinks
/// (recordings, pcapng) own their outputs. Diagnostics (decode errors with their position) go to
/// `diagnostics`, never to the output.
public final class EventPipeline: RecordConsumer {
    public let decoder: EventDecoder
    /// The pods learned from `pod` metadata (the lab's, a recording's): the decoder's endpoints for
    /// Hubble's traffic direction, the Hubble renderer's names.
    public let pods: PodDirectory
    public let format: OutputFormat
    public let names: InterfaceNames
    /// Where rendered records go. The parallel renderer points it at each batch's own buffer.
    public var out: OutputBuffer {
        didSet {
            textSink?.out = out
            structuredSink?.out = out
        }
    }
    /// The sink that renders `format` into `out` (nil for `.none`).
    public var renderSink: (any EventSink)? { textSink ?? structuredSink }
    /// Undecodable events reported one line each; the rest are counted (`stats.decodeErrors`).
    public static let maxDecodeErrorLines = 1000
    /// Undecodable events seen by this pipeline over its whole life.
    public private(set) var decodeErrorLines = 0

    /// The rendering sink, typed: the per-event call goes to it directly (no existential dispatch,
    /// which copied the whole Event per call).
    private let textSink: TextSink?
    private let structuredSink: StructuredSink?
    /// The sinks after the rendering one (recordings, pcapng, ...).
    public private(set) var extraSinks: [any EventSink] = []
    /// Every sink, the rendering one first.
    public var sinks: [any EventSink] { (renderSink.map { [$0] } ?? []) + extraSinks }
    public var filter: EventFilter {
        didSet {
            filterActive = !filter.isEmpty
            matcher = FilterMatcher(filter, pods: pods)
        }
    }
    /// The filter compiled for the per-event path.
    private var matcher: FilterMatcher
    /// `!filter.isEmpty`, kept so the per-event path does not read the filter struct.
    private var filterActive: Bool
    /// Text at `-vv`: the renderer reads the flow only for some events.
    private let verboseText: Bool
    /// Totals for `--summary` (nil: not counted).
    public var counters: FlowCounters?
    public var stats = PipelineStats()
    /// Current node (set by `node=`/`host=` metadata or by the live source).
    public var node: String?
    /// Where diagnostics go (stderr by default).
    public var diagnostics: (String) -> Void
    /// Where rendered records are written (nil: they stay in `out`, for tests and the parallel
    /// renderer's workers).
    public let output: ByteOutput?
    /// Flush after every record (a terminal), instead of in 64 KiB blocks.
    public var flushEachRecord: Bool
    /// Set when the output reported its reader gone (EPIPE).
    public private(set) var outputClosed = false
    /// The errno of a write that failed for another reason than EPIPE (0: none).
    public private(set) var outputError: Int32 = 0
    /// Stop once this many events passed the filter (`--count`).
    public var maxEvents: Int?
    public var shouldStop: Bool {
        outputClosed || outputError != 0 || (maxEvents.map { stats.matched >= $0 } ?? false)
    }
    /// The event being decoded, reused for every record. It lives behind a pointer so renderers can
    /// borrow it: reading a class `var` would copy the whole Event (and retain its arrays) per record.
    private let event: UnsafeMutablePointer<Event>

    public init(
        format: OutputFormat, verbosity: Verbosity = .info, hex: Bool = false, numeric: Bool = false,
        release: CiliumRelease = .v1_13, tunnelPorts: TunnelPorts = .standard, output: ByteOutput? = nil,
        flushEachRecord: Bool = false, names: InterfaceNames = InterfaceNames(),
        decorations: TextDecorations = TextDecorations(), filter: EventFilter = EventFilter(),
        diagnostics: @escaping (String) -> Void
    ) {
        self.names = names
        self.format = format
        let pods = PodDirectory()
        self.pods = pods
        var decoder = EventDecoder(release: release, tunnelPorts: tunnelPorts)
        decoder.pods = pods
        self.decoder = decoder
        let out = OutputBuffer(capacity: 1 << 17)
        self.out = out
        textSink =
            format == .text
            ? TextSink(
                renderer: TextRenderer(verbosity: verbosity, hex: hex, numeric: numeric, release: release, names: names),
                out: out, decorations: decorations) : nil
        switch format {
        case .json, .yaml:
            // -v, -vv, --hex and -n deepen JSON and YAML as they deepen text (`monitor`, `packet.data`).
            let renderer = StructuredRenderer(release: release, names: names, verbosity: verbosity, hex: hex, numeric: numeric)
            structuredSink = StructuredSink(format: format == .json ? .json : .yaml, renderer: renderer, out: out)
        case .jsonpb:
            structuredSink = StructuredSink(
                format: .jsonpb, renderer: StructuredRenderer(release: release, names: names), out: out, pods: pods)
        case .text, .none:
            structuredSink = nil
        }
        var filter = filter
        filter.names = names
        self.filter = filter
        filterActive = !filter.isEmpty
        matcher = FilterMatcher(filter, pods: pods)
        verboseText = format == .text && verbosity == .verbose
        self.output = output
        self.flushEachRecord = flushEachRecord
        self.diagnostics = diagnostics
        event = .allocate(capacity: 1)
        event.initialize(to: Event())
    }

    deinit {
        event.deinitialize(count: 1)
        event.deallocate()
    }

    /// Learns a pod (the lab's, or a recording's pod record): the decoder's and the renderers' names,
    /// and the filter's `--pod` from here on.
    public func learn(_ pod: PodInfo) {
        pods.learn(pod)
        // Only a pod the filter names changes what it matches (a recording can hold many pods).
        if filter.podSelectors.contains(where: { $0.matches(pod) }) { matcher = FilterMatcher(filter, pods: pods) }
    }

    /// The flow of the event at `event`, in place.
    @inline(__always)
    private func flowOf(_ event: UnsafeMutablePointer<Event>) -> UnsafePointer<Flow> {
        UnsafeRawPointer(event).advanced(by: Self.flowOffset).assumingMemoryBound(to: Flow.self)
    }

    private static let flowOffset = MemoryLayout<Event>.offset(of: \Event.flow)!

    /// Adds a sink after the rendering one.
    public func add(_ sink: any EventSink) { extraSinks.append(sink) }

    // MARK: RecordConsumer

    public func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        event.pointee.flow.cpu = cpu
        event.pointee.flow.timeNanoseconds = timeNanoseconds
        event.pointee.flow.node = node
        // Only text at -vv reads no flow for most events; everything else (filters, counters, JSON,
        // other sinks) needs it for every event.
        let flowAlways = !verboseText || filterActive || counters != nil || !extraSinks.isEmpty
        do {
            try decoder.decode(body, into: &event.pointee, packetFlow: flowAlways)
            if !flowAlways && TextRenderer.readsFlow(event.pointee.flow.type, verbosity: .verbose) {
                decoder.completeFlow(body, of: &event.pointee)
            }
        } catch {
            stats.decodeErrors += 1
            // One line each up to a bound (a hostile peer or recording must not flood stderr); every
            // one is counted in the summary line. Counted apart from `stats`, which the parallel
            // replay resets per batch.
            decodeErrorLines &+= 1
            guard decodeErrorLines <= Self.maxDecodeErrorLines else { return }
            var where_ = "record \(index)"
            if offset >= 0 { where_ += " (byte offset \(offset))" }
            if let node { where_ += " from node \(Self.sanitized(node))" }
            diagnostics(
                "vxmon: \(where_), CPU \(cpu): \(error); event skipped"
                    + (decodeErrorLines == Self.maxDecodeErrorLines ? " (further undecodable events are only counted)" : ""))
            return
        }
        stats.events += 1
        if filterActive && !matcher.matches(flowOf(event)) {
            stats.filtered += 1
            return
        }
        if let maxEvents, stats.matched > maxEvents {
            // Past --count (a source that delivers a batch before it checks shouldStop).
            stats.events -= 1
            return
        }
        counters?.count(event.pointee)
        if let textSink {
            textSink.event(at: event, record: body)
        } else if let structuredSink {
            structuredSink.event(at: event, record: body)
        }
        if !extraSinks.isEmpty { deliver(body) }
        afterRecord()
    }

    private func deliver(_ body: RawSpan) {
        for sink in extraSinks { sink.event(event.pointee, record: body) }
    }

    public func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
        stats.lostSamples +|= count
        stats.lostRecords += 1
        let lost = LostSamples(cpu: cpu, count: count, timeNanoseconds: timeNanoseconds, node: node)
        counters?.count(lost)
        for sink in sinks { sink.lost(lost) }
        afterRecord()
    }

    public func interfaceName(ifindex: UInt32, name: String) {
        interfaceName(ifindex: ifindex, name: name, time: 0)
    }

    public func interfaceName(ifindex: UInt32, name: String, time: UInt64) {
        names.set(ifindex, name, node: node)
        for sink in sinks { sink.interfaceName(ifindex: ifindex, name: name, node: node, time: time) }
    }

    public func metadata(key: String, value: String) {
        if let named = Vxrec.node(fromMetadata: key, value) { node = named }
        if let pod = PodInfo(metadataKey: key, value: value) { learn(pod) }
        for sink in sinks { sink.metadata(key: key, value: value, time: 0) }
    }

    public func malformedRecord(index: Int, offset: Int, reason: String) {
        stats.malformedRecords += 1
        diagnostics("vxmon: record \(index) (byte offset \(offset)): \(reason); record skipped")
    }

    private func afterRecord() {
        guard output != nil else { return }
        if flushEachRecord || out.count >= 1 << 16 { flush() }
    }

    /// Writes everything buffered, also in the other sinks. Returns false once the output is gone.
    @discardableResult
    public func flush() -> Bool {
        if let output, !outputClosed && outputError == 0 && out.count > 0 {
            switch out.flush(to: output) {
            case .ok: break
            case .closed: outputClosed = true
            case .failed(let e): outputError = e
            }
        }
        for sink in extraSinks {
            switch sink.flush() {
            case .ok: break
            case .closed: outputClosed = true
            case .failed(let e): if outputError == 0 { outputError = e }
            }
        }
        return !shouldStop
    }

    /// A one-line summary for stderr.
    public func summaryLine() -> String { stats.summaryLine }

    /// Text from outside, safe for a terminal.
    public static func sanitized(_ s: String) -> String {
        let buffer = OutputBuffer(capacity: 64)
        buffer.appendSanitized(s)
        return buffer.string
    }
}
