import Foundation
import Testing
import VxmonCore

// -v, -vv, --hex and -n deepen JSON and YAML as they deepen text: `monitor` holds the lines Cilium's
// own formatter printed for the vector with the same flags (the vectors' expected files, with vxmon's
// documented difference (1) applied and the separator left out), `packet.data` the bytes Cilium's
// `--hex` dump shows. Foundation's JSONSerialization reads the records; the YAML renderings are checked
// against PyYAML in the CLI tests (StructuredOutputTests).

/// The bytes of a Go `hex.Dump` (`00000000  56 a1 ...  |V...|` lines), as Cilium prints them with --hex.
func goHexDumpBytes(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    for line in lines(text) {
        // Offset (8 hex digits), two spaces, up to 16 bytes in two groups, then `|...|`.
        guard line.count > 10, line.prefix(8).allSatisfy(\.isHexDigit) else { continue }
        let body = line.dropFirst(10).prefix { $0 != "|" }
        for word in body.split(separator: " ") where word.count == 2 {
            if let b = UInt8(word, radix: 16) { out.append(b) }
        }
    }
    return out
}

@Suite("JSON and YAML deepen with -v, -vv and --hex")
struct StructuredVerbosityTests {
    /// Vectors whose text is Cilium's line for line (no tunnel, decodable, not padded).
    static let plainVectors = Fixtures.vectorNames.filter {
        tunnelVectors[$0] == nil && $0 != "trace_unknown_version" && $0 != "trace_v1_to_overlay_icmp_kernelpad"
    }

    static func records(_ output: String) throws -> [[String: Any]] {
        try lines(output).map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not an object: \(line)")
        }
    }

    @Test("`monitor` is what cilium monitor prints with the same flags", arguments: plainVectors, [RenderMode.textV, .textVV, .textVVHex])
    func monitorLines(name: String, text: RenderMode) throws {
        var mode = text
        mode.format = .json
        var cilium = try #require(Fixtures.text("\(Fixtures.vectors)/\(name).\(text.name).txt"))
        if text.verbosity == .verbose { cilium = moveHeadersAfterSeparator(cilium) }
        let records = try Self.records(renderVector(name, mode).output)
        try #require(records.count == 1, "\(name): one record")
        if records[0]["type"] as? String == "lost" {
            // Lost records are complete as they are: no `monitor`.
            #expect(records[0]["monitor"] == nil)
            return
        }
        let got = try #require(records[0]["monitor"] as? [String], "\(name): no monitor key")
        #expect(got == lines(cilium).filter { $0 != separatorLine }, "\(name) \(text.name)")
    }

    @Test("--hex: packet.data is the captured bytes of Cilium's hex dump", arguments: plainVectors)
    func packetData(name: String) throws {
        var mode = RenderMode.json
        mode.hex = true
        let records = try Self.records(renderVector(name, mode).output)
        let dump = goHexDumpBytes(try #require(Fixtures.text("\(Fixtures.vectors)/\(name).vvhex.txt")))
        let packets = records.compactMap { $0["packet"] as? [String: Any] }
        if dump.isEmpty && !packets.isEmpty {
            // Cilium prints no dump for this type (policy verdicts, recorder captures): the bytes are then
            // the end of the sample, as long as the record's captured length says (read from the spec).
            let body = try #require(parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/\(name).vxrec")).first { $0.kind == 1 }?.body)
            for (record, packet) in zip(records, packets) {
                let data = hexBytes(packet["data"] as? String ?? "")
                let captured = (record["captured"] ?? record["caplen"]) as? Int ?? -1
                #expect(data.count == captured && Array(body.suffix(data.count)) == data, "\(name)")
            }
            return
        }
        if dump.isEmpty { return }  // no packet (lost records, debug messages, socket traces, unknown types)
        let data = try #require(packets.first?["data"] as? String, "\(name): no packet.data")
        #expect(hexBytes(data) == dump, "\(name)")
        // Without -v the record has no `monitor`: --hex adds the bytes only.
        #expect(records.allSatisfy { $0["monitor"] == nil })
    }

    @Test("the default record is the same whatever the text options", arguments: plainVectors)
    func defaultUnchanged(name: String) throws {
        let plain = renderVector(name, .json).output
        var numeric = RenderMode.json
        numeric.numeric = true
        #expect(renderVector(name, numeric).output == plain)
        for record in try Self.records(plain) {
            #expect(record["monitor"] == nil && (record["packet"] as? [String: Any])?["data"] == nil, "\(name)")
        }
    }
}
