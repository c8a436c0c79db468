import Testing
import VxmonCore

// Tests/Fixtures/vectors/agent-socket-1.2.bin is the byte stream Cilium 1.13's agent writes to a
// `cilium monitor` client (gob-encoded payloads, listener protocol 1.2) holding the events of every
// vector; agent-socket-1.2.default.txt is Cilium's default rendering of it, and
// agent-socket-1.2.cli-reuse.default.txt what the real CLI prints (stale CPU numbers).

private func renderStream(carryOver: Bool) throws -> (lines: [String], diagnostics: [String], stats: PipelineStats) {
    let sink = DiagnosticSink()
    let pipeline = EventPipeline(format: .text, fd: -1, diagnostics: { sink.lines.append($0) })
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

    @Test("a stream cut inside a message renders what came before, then fails")
    func truncated() throws {
        let bytes = Fixtures.bytes("\(Fixtures.vectors)/agent-socket-1.2.bin")
        let pipeline = EventPipeline(format: .text, fd: -1, diagnostics: { _ in })
        #expect(throws: RecordingError.self) {
            try withTemporaryFile(Array(bytes.prefix(1000))) { fd in
                var consumer = pipeline
                try AgentStreamReader(fd: fd).run(&consumer)
            }
        }
        #expect(pipeline.stats.events > 0)
    }
}
