import VxmonWire

/// Writes every captured packet of the events that pass the filter to a pcapng file, for Wireshark:
/// one interface per node and interface (`worker2/lxc839726d5`), Ethernet or raw IP as the capture
/// starts, the event's time, and the event's one-line summary (observation point, identities, VNI,
/// drop reason) as the packet comment.
public final class PcapngSink: EventSink {
    private let output: ByteOutput
    private let out = OutputBuffer(capacity: 1 << 17)
    private let interfaces: PcapngInterfaces
    private let summary: TextRenderer
    private let scratch = OutputBuffer(capacity: 1 << 10)
    public private(set) var packets = 0

    /// `names` are the pipeline's interface names; `release` picks the summary's name tables.
    public init(output: ByteOutput, names: InterfaceNames, release: CiliumRelease = .v1_13, numeric: Bool = false) {
        self.output = output
        interfaces = PcapngInterfaces()
        summary = TextRenderer(verbosity: .info, numeric: numeric, release: release, names: names)
        PcapngEncoder().sectionHeader(into: out)
    }

    public func event(_ event: borrowing Event, record: RawSpan) {
        guard event.packetLength > 0 else { return }
        let originalLength: UInt32
        switch event.message {
        case .trace(let t): originalLength = t.lengthOriginal
        case .drop(let d): originalLength = d.lengthOriginal
        case .capture(let c): originalLength = c.lengthOriginal
        case .policyVerdict(let p): originalLength = p.lengthOriginal
        case .recorder(let r): originalLength = r.length
        default: return
        }
        let linkType: PcapngLinkType
        switch event.packet.layers.first?.kind {
        case .ipv4?, .ipv6?: linkType = .rawIP
        default: linkType = .ethernet
        }
        let ifindex = event.flow.ifindex ?? 0
        let interface: PcapngInterfaces.Interface =
            summary.names.name(ifindex, node: event.node).map { .name($0) } ?? .index(ifindex)
        let comment = self.comment(event, record)
        record.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[event.packetOffset..<(event.packetOffset + event.packetLength)])
            interfaces.packet(
                node: event.node, interface: interface, linkType: linkType, timeNanoseconds: event.timeNanoseconds,
                bytes: bytes, originalLength: originalLength, comment: comment, into: out)
        }
        packets += 1
        if out.count >= 1 << 16 { _ = flush() }
        if status != .ok { out.removeAll() }
    }

    /// The event's one-line summary; for the debug captures Cilium shows no line for, the header
    /// line of its `-vv` rendering.
    private func comment(_ event: borrowing Event, _ record: RawSpan) -> String? {
        scratch.removeAll()
        summary.render(event, record: record, into: scratch)
        if scratch.count == 0 {
            var verbose = summary
            verbose.verbosity = .verbose
            verbose.hex = true
            verbose.render(event, record: record, into: scratch)
        }
        var bytes = scratch.bytes[...]
        // Skip the -vv separator line (78 dashes).
        if bytes.count > 2 && bytes[0] == UInt8(ascii: "-") && bytes[1] == UInt8(ascii: "-"),
            let newline = bytes.firstIndex(of: 10)
        {
            bytes = bytes[(newline + 1)...]
        }
        let end = bytes.firstIndex(of: 10) ?? bytes.endIndex
        return end > bytes.startIndex ? String(decoding: bytes[..<end], as: UTF8.self) : nil
    }

    public func lost(_ lost: LostSamples) {}

    public func flush() -> SinkStatus {
        guard status == .ok, out.count > 0 else { return status }
        status = out.flush(to: output)
        return status
    }

    /// How the last write went; after a failure nothing more is written and a file ends at its last
    /// whole block.
    public private(set) var status = SinkStatus.ok
}
