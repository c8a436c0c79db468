/// What text output adds to Cilium's lines: a time, the node, colour. With none of them the text is
/// exactly Cilium's.
public struct TextDecorations: Sendable {
    /// Prefix each record with its time in this format.
    public var timestamps: TimeFormatter?
    /// Prefix each record with `[node]` (when the stream interleaves several nodes).
    public var nodeLabels = false
    /// ANSI colour: drops and denials red, lost samples yellow, times dim, node names cyan.
    public var color = false

    public init(timestamps: TimeFormatter? = nil, nodeLabels: Bool = false, color: Bool = false) {
        self.timestamps = timestamps
        self.nodeLabels = nodeLabels
        self.color = color
    }

    public var isEmpty: Bool { timestamps == nil && !nodeLabels && !color }
}

/// Renders events as `cilium monitor` text into `out` (the pipeline's output buffer).
public final class TextSink: EventSink {
    public let renderer: TextRenderer
    public var out: OutputBuffer
    public var decorations: TextDecorations
    /// A record is rendered here first when it is decorated, so the prefix can go on its first line.
    private let scratch = OutputBuffer(capacity: 1 << 12)

    public init(renderer: TextRenderer, out: OutputBuffer, decorations: TextDecorations = TextDecorations()) {
        self.renderer = renderer
        self.out = out
        self.decorations = decorations
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        // Node labels alone need the detour only for events that name a node.
        if decorations.isEmpty || (decorations.timestamps == nil && !decorations.color && event.node == nil) {
            renderer.render(event, record: record, into: out)
            return
        }
        scratch.removeAll()
        renderer.render(event, record: record, into: scratch)
        let alert = event.flow.verdict == .dropped
        decorate(time: event.timeNanoseconds, node: event.node, color: alert ? Self.red : nil)
    }

    /// `event(_:record:)` for the pipeline's per-event path: the event is read in place through the
    /// pointer (a class method taking the pipeline's event `borrowing` copied it whole).
    @inline(__always)
    func event(at event: UnsafePointer<Event>, record: RawSpan) {
        if decorations.isEmpty || (decorations.timestamps == nil && !decorations.color && event.pointee.flow.node == nil) {
            renderer.render(at: event, record: record, into: out)
        } else {
            self.event(event.pointee, record: record)
        }
    }

    public func lost(_ lost: LostSamples) {
        if decorations.isEmpty || (decorations.timestamps == nil && !decorations.color && lost.node == nil) {
            renderer.renderLost(cpu: lost.cpu, count: lost.count, into: out)
            return
        }
        scratch.removeAll()
        renderer.renderLost(cpu: lost.cpu, count: lost.count, into: scratch)
        decorate(time: lost.timeNanoseconds, node: lost.node, color: Self.yellow)
    }

    public func interfaceName(ifindex: UInt32, name: String, node: String?, time: UInt64) {}

    static let red: StaticString = "\u{1b}[31m"
    static let yellow: StaticString = "\u{1b}[33m"
    static let dim: StaticString = "\u{1b}[2m"
    static let cyan: StaticString = "\u{1b}[36m"
    static let reset: StaticString = "\u{1b}[0m"

    /// Copies `scratch` to `out` with the decorations on the record's first line (the header line
    /// after the `-vv` separator).
    private func decorate(time: UInt64, node: String?, color lineColor: StaticString?) {
        let bytes = scratch.bytes
        guard !bytes.isEmpty else { return }
        let separatorLength = 79  // 78 dashes and a newline
        var start = 0
        if bytes.count > separatorLength && bytes[0] == UInt8(ascii: "-") && bytes[separatorLength - 1] == 10 {
            start = separatorLength
        }
        var lineEnd = start
        while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
        out.append(bytes: UnsafeBufferPointer(rebasing: bytes[0..<start]))
        let color = decorations.color
        if color, let lineColor { out.append(lineColor) }
        if let timestamps = decorations.timestamps {
            if color && lineColor == nil { out.append(Self.dim) }
            timestamps.append(time, to: out)
            if color && lineColor == nil { out.append(Self.reset) }
            out.append(byte: 32)
        }
        if decorations.nodeLabels, let node {
            if color && lineColor == nil { out.append(Self.cyan) }
            out.append(byte: UInt8(ascii: "["))
            out.appendSanitized(node)
            out.append(byte: UInt8(ascii: "]"))
            if color && lineColor == nil { out.append(Self.reset) }
            out.append(byte: 32)
        }
        out.append(bytes: UnsafeBufferPointer(rebasing: bytes[start..<lineEnd]))
        if color, lineColor != nil { out.append(Self.reset) }
        out.append(bytes: UnsafeBufferPointer(rebasing: bytes[lineEnd...]))
    }
}

/// Renders events as vxmon's JSON or YAML records into `out` (the pipeline's output buffer).
public final class StructuredSink: EventSink {
    public enum Format: Sendable {
        case json
        case yaml
        /// Hubble's `GetFlowsResponse` in protobuf JSON (`hubble observe -o jsonpb`).
        case jsonpb
    }
    public let renderer: StructuredRenderer
    public let hubble: HubbleJSONRenderer
    public var out: OutputBuffer
    public let format: Format

    public init(format: Format, renderer: StructuredRenderer, out: OutputBuffer, pods: PodDirectory = PodDirectory()) {
        self.format = format
        self.renderer = renderer
        hubble = HubbleJSONRenderer(names: renderer.names, pods: pods, release: renderer.release)
        self.out = out
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        switch format {
        case .json: renderer.renderJSON(event, record: record, into: out)
        case .yaml: renderer.renderYAML(event, record: record, into: out)
        case .jsonpb: hubble.render(event, record: record, into: out)
        }
    }

    /// `event(_:record:)` for the pipeline's per-event path (see `TextSink.event(at:record:)`).
    @inline(__always)
    func event(at event: UnsafePointer<Event>, record: RawSpan) {
        switch format {
        case .json: renderer.renderJSON(event.pointee, record: record, into: out)
        case .yaml: renderer.renderYAML(event.pointee, record: record, into: out)
        case .jsonpb: hubble.render(event.pointee, record: record, into: out)
        }
    }

    public func lost(_ lost: LostSamples) {
        switch format {
        case .json:
            renderer.renderLostJSON(
                cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds, node: lost.node, into: out)
        case .yaml:
            renderer.renderLostYAML(
                cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds, node: lost.node, into: out)
        case .jsonpb:
            hubble.renderLost(cpu: lost.cpu, count: lost.count, time: lost.timeNanoseconds, node: lost.node, into: out)
        }
    }

}
