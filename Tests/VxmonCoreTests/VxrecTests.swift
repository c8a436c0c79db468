import Foundation
import Testing
import VxmonCore
import VxmonLive
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// The `.vxrec` v1 format (spec/vxrec.md): writer and reader round trip, interface names, metadata,
// truncation, bad headers, unknown kinds, lost records.

/// Records everything a reader hands over, for comparing with what was written.
struct RecordingConsumer: RecordConsumer {
    enum Item: Equatable {
        case sample([UInt8], cpu: Int, time: UInt64, index: Int, offset: Int)
        case lost(cpu: Int, count: UInt64, time: UInt64)
        case interfaceName(UInt32, String)
        case metadata(String, String)
        case malformed(index: Int, offset: Int)
    }
    var items: [Item] = []

    mutating func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        var bytes: [UInt8] = []
        for i in 0..<body.byteCount { bytes.append(body.unsafeLoad(fromByteOffset: i, as: UInt8.self)) }
        items.append(.sample(bytes, cpu: cpu, time: timeNanoseconds, index: index, offset: offset))
    }
    mutating func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
        items.append(.lost(cpu: cpu, count: count, time: timeNanoseconds))
    }
    mutating func interfaceName(ifindex: UInt32, name: String) { items.append(.interfaceName(ifindex, name)) }
    mutating func metadata(key: String, value: String) { items.append(.metadata(key, value)) }
    mutating func malformedRecord(index: Int, offset: Int, reason: String) {
        items.append(.malformed(index: index, offset: offset))
    }
}

/// Runs `body` with a VxrecWriter on a temporary file and returns the bytes written.
func writeRecording(_ body: (VxrecWriter) -> Void) throws -> [UInt8] {
    let path = NSTemporaryDirectory() + "/vxmon-writer-\(UUID().uuidString).vxrec"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    try #require(fd >= 0)
    defer { unlink(path) }
    let writer = VxrecWriter(output: FileOutput(fd: fd))
    body(writer)
    #expect(writer.flush())
    close(fd)
    return Fixtures.bytes(path)
}

func readRecording(_ bytes: [UInt8]) -> (items: [RecordingConsumer.Item], error: RecordingError?) {
    var consumer = RecordingConsumer()
    var failure: RecordingError?
    do {
        try withTemporaryFile(bytes) { fd in
            try VxrecReader(fd: fd, chunkSize: 4096).run(&consumer)
        }
    } catch let e as RecordingError {
        failure = e
    } catch {
        failure = RecordingError("\(error)")
    }
    return (consumer.items, failure)
}

let pingTrace: [UInt8] = Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec") != nil
    ? parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))[0].body : []

@Suite(".vxrec recordings")
struct VxrecTests {
    @Test("writer output follows the spec byte for byte")
    func writerLayout() throws {
        let body: [UInt8] = [1, 2, 3]
        let bytes = try writeRecording { w in
            body.withUnsafeBytes { w.sample($0, cpu: 7, time: 0x0102_0304_0506_0708) }
        }
        // File header: magic, version 1, header_len 16, reserved 0.
        #expect(Array(bytes[0..<8]) == Array("VXMONREC".utf8))
        #expect(le16(bytes, 8) == 1)
        #expect(le16(bytes, 10) == 16)
        #expect(le32(bytes, 12) == 0)
        // Record header at 16: kind 1, reserved, cpu 7, time, length 3, reserved; body padded to 8.
        #expect(le16(bytes, 16) == 1)
        #expect(le16(bytes, 18) == 0)
        #expect(le32(bytes, 20) == 7)
        #expect(le64(bytes, 24) == 0x0102_0304_0506_0708)
        #expect(le32(bytes, 32) == 3)
        #expect(le32(bytes, 36) == 0)
        #expect(Array(bytes[40..<48]) == [1, 2, 3, 0, 0, 0, 0, 0])
        #expect(bytes.count == 48)
    }

    @Test("round trip: every kind of record comes back as written")
    func roundTrip() throws {
        let samples: [[UInt8]] = [pingTrace, [9, 0, 1, 2], Array(repeating: 0xab, count: 8), [], Array(0..<255)]
        let bytes = try writeRecording { w in
            w.metadata("source", "cilium-agent")
            w.interfaceName(3, "cilium_vxlan")
            for (i, s) in samples.enumerated() {
                s.withUnsafeBytes { w.sample($0, cpu: i, time: UInt64(1000 + i)) }
            }
            w.lost(cpu: 2, count: 42, time: 99)
        }
        // Independent parse of what the writer produced.
        let parsed = parseVxrec(bytes)
        #expect(parsed.map(\.kind) == [4, 3, 1, 1, 1, 1, 1, 2])
        #expect(bytes.count % 8 == 0)

        let (items, error) = readRecording(bytes)
        #expect(error == nil)
        try #require(items.count == 8)
        #expect(items[0] == .metadata("source", "cilium-agent"))
        #expect(items[1] == .interfaceName(3, "cilium_vxlan"))
        var offset = 16 + 24 + 24 + 24 + 16  // metadata (19 bytes -> 24) and interface name (16 bytes)
        for (i, s) in samples.enumerated() {
            #expect(items[2 + i] == .sample(s, cpu: i, time: UInt64(1000 + i), index: 3 + i, offset: offset))
            offset += 24 + ((s.count + 7) & ~7)
        }
        #expect(items[7] == .lost(cpu: 2, count: 42, time: 99))
    }

    @Test("a large recording streams through a small reader buffer")
    func largeRecording() throws {
        let bulk = Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec")
        let (items, error) = readRecording(bulk)
        #expect(error == nil)
        let expected = parseVxrec(bulk)
        #expect(items.count == expected.count)
        for (item, rec) in zip(items, expected) {
            guard case .sample(let body, let cpu, _, _, _) = item else {
                Issue.record("not a sample")
                break
            }
            #expect(body == rec.body && cpu == Int(rec.cpu))
        }
    }

    @Test("interface-name records make text print names")
    func interfaceNames() throws {
        let records = [TestRecord(kind: 3, cpu: 0, time: 0, body: [3, 0, 0, 0] + Array("cilium_vxlan".utf8))]
            + parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let file = buildVxrec(records)
        let text = renderRecording(file, .textDefault).output
        #expect(text.contains(" ifindex cilium_vxlan orig-ip "), "\(text)")
        let vv = renderRecording(file, .textVV).output
        #expect(vv.contains(", interface cilium_vxlan, "), "\(vv)")
        let json = renderRecording(file, .json).output
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let iface = try #require(obj["interface"] as? [String: Any])
        #expect(iface["index"] as? Int == 3)
        #expect(iface["name"] as? String == "cilium_vxlan")
        // A later record for the same ifindex wins.
        let twice = buildVxrec(
            [TestRecord(kind: 3, cpu: 0, time: 0, body: [3, 0, 0, 0] + Array("old".utf8)),
             TestRecord(kind: 3, cpu: 0, time: 0, body: [3, 0, 0, 0] + Array("new".utf8))] + records.dropFirst())
        #expect(renderRecording(twice, .textDefault).output.contains(" ifindex new orig-ip "))
    }

    @Test("node= metadata sets node_name in JSON and YAML")
    func nodeMetadata() throws {
        let records = [TestRecord(kind: 4, cpu: 0, time: 0, body: Array("node=worker2".utf8))]
            + parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
            + [TestRecord(kind: 2, cpu: 2, time: 0, body: [42, 0, 0, 0, 0, 0, 0, 0])]
        let out = renderRecording(buildVxrec(records), .json).output
        let objs = lines(out).compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        try #require(objs.count == 2)
        #expect(objs[0]["node_name"] as? String == "worker2")
        #expect(objs[1]["node_name"] as? String == "worker2")
        #expect(renderRecording(buildVxrec(records), .yaml).output.contains("\nnode_name: \"worker2\"\n"))
        // Without metadata there is no node_name.
        let plain = renderVector("trace_v1_to_overlay_icmp", .json).output
        #expect(!plain.contains("node_name"))
    }

    @Test("a file truncated inside a record renders every complete record, then fails")
    func truncated() throws {
        let a = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let b = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/drop_policy_denied_tcp.vxrec"))
        let full = buildVxrec(a + b)
        let firstEnd = 16 + 24 + ((a[0].body.count + 7) & ~7)
        let expectedFirst = try #require(Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
        // Cut inside the second record's header and inside its body.
        for cut in [firstEnd + 1, firstEnd + 23, firstEnd + 24, firstEnd + 30, full.count - 9] {
            let r = renderRecording(Array(full.prefix(cut)), .textDefault)
            #expect(r.output == expectedFirst, "cut at \(cut)")
            let error = try #require(r.error, "cut at \(cut): no error")
            #expect(error.description.contains("truncated"), "\(error)")
        }
        // Missing padding after the last record is not an error.
        let lastBodyEnd = full.count - ((8 - b[0].body.count % 8) % 8)
        let r = renderRecording(Array(full.prefix(lastBodyEnd)), .textDefault)
        #expect(r.error == nil)
        #expect(lines(r.output).count == 2)
    }

    @Test("bad magic, wrong version, empty file and short header are clear errors")
    func badHeaders() throws {
        let sample = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let badMagic = readRecording(buildVxrec(sample, magic: "VXMONRED"))
        #expect(badMagic.items.isEmpty)
        #expect(badMagic.error?.description.contains("magic") == true, "\(String(describing: badMagic.error))")

        let v2 = readRecording(buildVxrec(sample, version: 2))
        #expect(v2.items.isEmpty)
        #expect(v2.error?.description.contains("version 2") == true, "\(String(describing: v2.error))")

        let empty = readRecording([])
        #expect(empty.error?.description.contains("empty") == true)

        let short = readRecording(Array("VXMONREC".utf8))
        #expect(short.error != nil)

        let pcap = readRecording([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0] + Array(repeating: 0, count: 16))
        #expect(pcap.error?.description.contains("not a vxmon recording") == true)
    }

    @Test("a larger header_len is skipped (later versions may grow the header)")
    func grownHeader() throws {
        var file = buildVxrec(parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec")))
        file[10] = 24
        file.insert(contentsOf: Array(repeating: 0xee, count: 8), at: 16)
        let r = renderRecording(file, .textDefault)
        #expect(r.error == nil)
        #expect(r.output == Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
    }

    @Test("unknown record kinds are skipped")
    func unknownKinds() throws {
        let sample = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let file = buildVxrec(
            [TestRecord(kind: 99, cpu: 0, time: 0, body: Array(repeating: 0x55, count: 13)), TestRecord(kind: 0, cpu: 1, time: 0, body: [])]
                + sample + [TestRecord(kind: 0xffff, cpu: 0, time: 0, body: [1])])
        let r = renderRecording(file, .textDefault)
        #expect(r.error == nil)
        #expect(r.diagnostics.isEmpty)
        #expect(r.output == Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
    }

    @Test("a lost record renders as Cilium's lost line / vxmon's lost object")
    func lostRecord() throws {
        let file = buildVxrec([TestRecord(kind: 2, cpu: 2, time: 0, body: [42, 0, 0, 0, 0, 0, 0, 0])])
        #expect(renderRecording(file, .textDefault).output == "CPU 02: Lost 42 events\n")
        #expect(renderRecording(file, .textVV).output == "CPU 02: Lost 42 events\n")
        #expect(renderRecording(file, .json).output == "{\"type\":\"lost\",\"cpu\":2,\"count\":42}\n")
        #expect(renderRecording(file, .yaml).output == "---\ntype: \"lost\"\ncpu: 2\ncount: 42\n")
        let r = renderRecording(file, .textDefault)
        #expect(r.stats.lostSamples == 42)
        #expect(r.stats.lostRecords == 1)
        // The vector itself.
        #expect(renderVector("lost_events", .textDefault).output == "CPU 02: Lost 42 events\n")
        #expect(renderVector("lost_events", .json).output == "{\"type\":\"lost\",\"cpu\":2,\"count\":42}\n")
    }

    @Test("a lost record with a short body is reported, not fatal")
    func shortLost() throws {
        let sample = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let file = buildVxrec([TestRecord(kind: 2, cpu: 2, time: 0, body: [42, 0, 0])] + sample)
        let r = renderRecording(file, .textDefault)
        #expect(r.error == nil)
        #expect(r.diagnostics.count == 1)
        #expect(r.stats.malformedRecords == 1)
        #expect(r.output == Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
    }

    @Test("a record time becomes an RFC 3339 time in JSON")
    func timeField() throws {
        var sample = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        sample[0].time = 1_700_000_000_123_456_789  // 2023-11-14T22:13:20.123456789Z
        let out = renderRecording(buildVxrec(sample), .json).output
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(obj["time"] as? String == "2023-11-14T22:13:20.123456789Z")
        // Text never prints the time (host-independent output).
        #expect(renderRecording(buildVxrec(sample), .textDefault).output
            == Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
    }

    @Test("decode errors name the record and its byte offset")
    func decodeErrorPosition() throws {
        let good = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let bad = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/trace_unknown_version.vxrec"))
        let r = renderRecording(buildVxrec(good + bad), .textDefault)
        try #require(r.diagnostics.count == 1)
        let offset = 16 + 24 + ((good[0].body.count + 7) & ~7)
        #expect(r.diagnostics[0].contains("record 2"), "\(r.diagnostics[0])")
        #expect(r.diagnostics[0].contains("\(offset)"), "\(r.diagnostics[0])")
        #expect(r.output == Fixtures.text("\(Fixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
    }
}

@Suite("counters from outside saturate")
struct SaturationTests {
    @Test("two lost records that add up past 2^64 give UInt64.max, not a small number")
    func lostSaturates() throws {
        let half = UInt64(1) << 63
        func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
        let file = buildVxrec([
            TestRecord(kind: 2, cpu: 1, time: 0, body: le(half)), TestRecord(kind: 2, cpu: 1, time: 0, body: le(half + 5)),
        ])
        let pipeline = EventPipeline(format: .json, diagnostics: { _ in })
        pipeline.counters = FlowCounters()
        try withTemporaryFile(file) { fd in
            var consumer = pipeline
            try VxrecReader(fd: fd).run(&consumer)
        }
        #expect(pipeline.stats.lostSamples == UInt64.max)
        #expect(pipeline.counters?.lostSamples == UInt64.max)
        #expect(pipeline.counters?.lostByCPU[1] == UInt64.max)
    }
}
