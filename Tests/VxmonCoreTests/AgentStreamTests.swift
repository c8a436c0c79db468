import Testing
import VxmonCore
import VxmonLive

// Tests/Fixtures/vectors/agent-socket-1.2.bin is the byte stream Cilium 1.13's agent writes to a
// `cilium monitor` client (gob-encoded payloads, listener protocol 1.2) holding the events of every
// vector; agent-socket-1.2.default.txt is Cilium's default rendering of it, and
// agent-socket-1.2.cli-reuse.default.txt what the real CLI prints (stale CPU numbers).

private func renderStream(carryOver: Bool) throws -> (lines: [String], diagnostics: [String], stats: PipelineStats) {
    let sink = DiagnosticSink()
    let pipeline = EventPipeline(format: .text, diagnostics: { sink.lines.append($0) })
    try withTemporaryFile(Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin")) { fd in
        let reader = AgentStreamReader(fd: fd)
        reader.carryOverFields = carryOver
        var consumer = pipeline
        try reader.run(&consumer)
    }
    return (lines(pipeline.out.string), sink.lines, pipeline.stats)
}

/// Cilium's expected lines with the documented differences applied: the decode error line and the
/// zeroed rendering after it are not on stdout (difference 3); tunnel events are compared up to their
/// summary, which vxmon replaces by the inner flow plus a `[tunnel ...]` suffix (difference 2).
private func check(_ got: [String], against expectedFile: String) throws {
    var expected = lines(try #require(Fixtures.text("\(Fixtures.vectors)/\(expectedFile)")))
    if let e = expected.firstIndex(where: { $0.hasPrefix("Error while parsing") }) {
        expected.removeSubrange(e...(e + 1))
    }
    try #require(got.count == expected.count, "\(got.count) lines, expected \(expected.count)")
    for (g, e) in zip(got, expected) {
        if e.hasSuffix(":8472 udp") || e.hasSuffix(":4789 udp") {
            let head = String(e[..<e.range(of: "orig-ip 0.0.0.0: ")!.upperBound])
            #expect(g.hasPrefix(head), "\(g)")
            #expect(g.contains(" [tunnel 192.168.56.11:61000 -> 192.168.56.12:"), "\(g)")
        } else {
            #expect(g == e)
        }
    }
}

@Suite("Cilium agent monitor-socket stream")
struct AgentStreamTests {
    @Test("renders what Cilium renders for the stream, with the documented differences")
    func defaultRendering() throws {
        let r = try renderStream(carryOver: false)
        try check(r.lines, against: "agent-socket-1.2.default.txt")
        #expect(r.stats.lostSamples == 42)
        #expect(r.diagnostics.contains { $0.contains("Unrecognized trace event (version 7)") })
    }

    @Test("--cilium-cli-quirks reproduces the real CLI's reused fields")
    func cliReuse() throws {
        let r = try renderStream(carryOver: true)
        try check(r.lines, against: "agent-socket-1.2.cli-reuse.default.txt")
        #expect(r.lines.last == "CPU 02: Unknown event: [9 0 1 2]")
    }

    @Test("the encoder writes Cilium's agent's bytes: the vector stream's payloads re-encoded equal the stream")
    func encoderMatchesCilium() throws {
        let original = Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin")
        struct Collect: RecordConsumer {
            let out = OutputBuffer()
            mutating func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
                body.withUnsafeBytes {
                    AgentPayloadEncoder.appendPayload(data: $0, cpu: cpu, lost: 0, type: AgentPayloadEncoder.sampleType, to: out)
                }
            }
            mutating func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
                AgentPayloadEncoder.appendPayload(
                    data: UnsafeRawBufferPointer(start: nil, count: 0), cpu: cpu, lost: count, type: AgentPayloadEncoder.lostType, to: out)
            }
            mutating func interfaceName(ifindex: UInt32, name: String) {}
            mutating func metadata(key: String, value: String) {}
            mutating func malformedRecord(index: Int, offset: Int, reason: String) { Issue.record("\(reason)") }
        }
        var collect = Collect()
        AgentPayloadEncoder.appendTypeDefinition(to: collect.out)
        let parser = AgentStreamParser()
        original.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &collect)
        #expect(Array(collect.out.bytes) == original, "\(collect.out.count) bytes encoded, \(original.count) in the vector")
    }

    @Test("a stream cut inside a message renders what came before, then fails")
    func truncated() throws {
        let bytes = Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin")
        let pipeline = EventPipeline(format: .text, diagnostics: { _ in })
        #expect(throws: RecordingError.self) {
            try withTemporaryFile(Array(bytes.prefix(1000))) { fd in
                var consumer = pipeline
                try AgentStreamReader(fd: fd).run(&consumer)
            }
        }
        #expect(pipeline.stats.events > 0)
    }
}

@Suite("Parsers take bytes in pieces of any size")
struct ByteParserTests {
    /// Feeds `bytes` to `feed` in pieces of `size`, parsing after each.
    static func pieces(_ bytes: [UInt8], _ size: Int, _ feed: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var i = 0
        while i < bytes.count {
            let j = min(i + size, bytes.count)
            try bytes[i..<j].withUnsafeBytes { try feed($0) }
            i = j
        }
    }

    @Test("the agent stream fed one byte at a time renders as Cilium rendered it", arguments: [1, 7, 4096])
    func agentStreamInPieces(_ size: Int) throws {
        let pipeline = EventPipeline(format: .text, diagnostics: { _ in })
        let parser = AgentStreamParser()
        var consumer = pipeline
        try Self.pieces(Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin"), size) { piece in
            parser.feed(piece)
            try parser.parse(into: &consumer)
        }
        try parser.finish()
        try check(lines(pipeline.out.string), against: "agent-socket-1.2.default.txt")
    }

    @Test("a .vxrec fed in pieces gives the records the spec-level test reader finds", arguments: [1, 5, 24, 4096])
    func vxrecInPieces(_ size: Int) throws {
        let bytes = Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec")
        let parser = VxrecParser(capacity: 64)
        var consumer = RecordingConsumer()
        try Self.pieces(bytes, size) { piece in
            parser.feed(piece)
            try parser.parse(into: &consumer)
        }
        try parser.finish()
        let expected = parseVxrec(bytes).filter { $0.kind == 1 }
        let samples = consumer.items.compactMap { item -> [UInt8]? in
            if case .sample(let body, _, _, _, _) = item { return body }
            return nil
        }
        #expect(samples.count == expected.count && !samples.isEmpty)
        #expect(samples == expected.map(\.body))
    }

    @Test("hostile gob: huge field deltas, Int64.min type ids, giant lengths are reported, never trap")
    func hostileGob() throws {
        var stream = Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin")
        // A payload message whose first field delta is 2^63 (gob uint 0xf8 + 8 bytes), and a type id
        // of Int64.min (gob int: uint 2^64-1 zig-zagged).
        let payloadID: [UInt8] = [0xff, 0x82]  // gob int 65: the id the stream's first message defines
        let bigDelta: [UInt8] = [0xf8, 0x80, 0, 0, 0, 0, 0, 0, 0]
        stream += [UInt8(payloadID.count + bigDelta.count + 1)] + payloadID + bigDelta + [0]
        let minID: [UInt8] = [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        stream += [UInt8(minID.count + 1)] + minID + [0]
        let diagnostics = DiagnosticSink()
        let pipeline = EventPipeline(format: .text, diagnostics: { diagnostics.lines.append($0) })
        let parser = AgentStreamParser()
        var consumer = pipeline
        stream.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
        try parser.finish()
        #expect(pipeline.stats.malformedRecords == 2)
        #expect(diagnostics.lines.contains { $0.contains("undecodable agent payload") })
        // A length no message can have is an error with its offset, not an allocation.
        let giant = AgentStreamParser()
        var other = EventPipeline(format: .text, diagnostics: { _ in })
        [UInt8]([0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).withUnsafeBytes { giant.feed($0) }
        #expect(throws: RecordingError.self) { try giant.parse(into: &other) }
    }
}
