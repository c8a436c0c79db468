import Foundation
import Testing
import VxmonCore

// The pcapng encoder, with tshark as the oracle: files written here must read back in tshark with every
// packet, timestamp, comment and interface name. The packets are built by hand from their RFCs (IPv4
// RFC 791, ICMP RFC 792, UDP RFC 768, VXLAN RFC 7348), not by vxmon.
//
// tshark is the oracle, so a machine without it fails these tests (scripts/setup.sh installs it).

@Suite("pcapng")
struct PcapngTests {
    // MARK: Packets, from the RFCs

    static func ipv4(_ src: [UInt8], _ dst: [UInt8], protocol p: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let total = 20 + payload.count
        var h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, p, 0, 0]
        h += src + dst
        var sum = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += Int(h[i]) << 8 | Int(h[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        h[10] = UInt8((~sum >> 8) & 0xff)
        h[11] = UInt8(~sum & 0xff)
        return h + payload
    }

    static func ethernet(_ payload: [UInt8], src: UInt8 = 1, dst: UInt8 = 2) -> [UInt8] {
        [0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x08, 0x00] + payload
    }

    static func icmpEcho(id: UInt16, sequence: UInt16) -> [UInt8] {
        var b: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        b += Array("vxmon-pcapng-ping".utf8)
        if b.count % 2 == 1 { b.append(0) }
        var sum = 0
        for i in stride(from: 0, to: b.count, by: 2) { sum += Int(b[i]) << 8 | Int(b[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        b[2] = UInt8((~sum >> 8) & 0xff)
        b[3] = UInt8(~sum & 0xff)
        return b
    }

    /// UDP with checksum 0 ("no checksum", allowed over IPv4).
    static func udp(source: UInt16, destination: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 8 + payload.count
        return [
            UInt8(source >> 8), UInt8(source & 0xff), UInt8(destination >> 8), UInt8(destination & 0xff),
            UInt8(length >> 8), UInt8(length & 0xff), 0, 0,
        ] + payload
    }

    /// VXLAN header: flags with the I bit, reserved, 24-bit VNI, reserved.
    static func vxlan(vni: UInt32, _ payload: [UInt8]) -> [UInt8] {
        [0x08, 0, 0, 0, UInt8((vni >> 16) & 0xff), UInt8((vni >> 8) & 0xff), UInt8(vni & 0xff), 0] + payload
    }

    static let pod1: [UInt8] = [10, 0, 1, 10]
    static let pod2: [UInt8] = [10, 0, 2, 10]
    static let pod1b: [UInt8] = [10, 0, 1, 11]
    static let pod3: [UInt8] = [10, 0, 3, 10]
    static let node1: [UInt8] = [192, 168, 100, 1]
    static let node2: [UInt8] = [192, 168, 100, 2]

    static let echo = ethernet(ipv4(pod1, pod2, protocol: 1, icmpEcho(id: 0x4242, sequence: 1)))
    static let dns = ipv4(pod1b, pod3, protocol: 17, udp(source: 40000, destination: 53, Array("query".utf8)))
    /// Node 1 to node 2 on Cilium's VXLAN port, carrying pod 1's echo to pod 2.
    static let inner = ethernet(ipv4(pod1, pod2, protocol: 1, icmpEcho(id: 7, sequence: 2)), src: 3, dst: 4)
    static let tunnelled = ethernet(
        ipv4(node1, node2, protocol: 17, udp(source: 51000, destination: 8472, vxlan(vni: 19773, inner))),
        src: 5, dst: 6)

    // MARK: tshark

    static func tshark() throws -> String {
        try #require(
            which("tshark"),
            "tshark is not on PATH; it is the oracle of the pcapng tests: install it with scripts/setup.sh")
    }

    /// Writes `out` to a fresh temporary file, calls `body` with its path, removes it.
    static func withFile<R>(_ out: OutputBuffer, _ body: (String) throws -> R) throws -> R {
        let path = NSTemporaryDirectory() + "/vxmon-pcapng-\(UUID().uuidString).pcapng"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(buffer: out.bytes).write(to: URL(fileURLWithPath: path))
        return try body(path)
    }

    /// `tshark -r path -T fields` with `fields`, tab-separated, VXLAN decoded on 8472; one array of
    /// values per packet. Fails the test when tshark fails or says the file is damaged.
    static func fields(_ path: String, _ fields: [String], sourceLocation: SourceLocation = #_sourceLocation) throws
        -> [[String]]
    {
        var arguments = ["-r", path, "-T", "fields", "-E", "separator=/t", "-d", "udp.port==8472,vxlan"]
        for f in fields { arguments += ["-e", f] }
        let result = try runProcess(try tshark(), arguments)
        #expect(result.status == 0, "tshark: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("damaged"), "tshark: \(result.stderr)", sourceLocation: sourceLocation)
        return lines(result.stdout).map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    // MARK: Tests

    @Test("three packets on two interfaces read back in tshark: time, comment, interface, IPs, VNI, lengths")
    func readBack() throws {
        let out = OutputBuffer()
        let interfaces = PcapngInterfaces()
        interfaces.encoder.sectionHeader(into: out)
        let comments = [
            "to-endpoint 8287 → 12345 ✓ 日本語",
            "drop (Policy denied) — naïve café",
            "to-overlay: VXLAN Ω 🚀",
        ]
        Self.echo.withUnsafeBytes {
            interfaces.packet(
                node: "worker2", interface: .name("lxc1"), linkType: .ethernet,
                timeNanoseconds: 1_700_000_000_123_456_789, bytes: $0, originalLength: UInt32($0.count),
                comment: comments[0], into: out)
        }
        Self.dns.withUnsafeBytes {
            interfaces.packet(
                node: "worker", interface: .name("cilium_vxlan"), linkType: .rawIP,
                timeNanoseconds: 1_700_000_000_987_654_321, bytes: $0, originalLength: 1500, comment: comments[1],
                into: out)
        }
        Self.tunnelled.withUnsafeBytes {
            interfaces.packet(
                node: "worker2", interface: .name("lxc1"), linkType: .ethernet,
                timeNanoseconds: 1_700_000_001_000_000_001, bytes: $0, originalLength: UInt32($0.count),
                comment: comments[2], into: out)
        }
        #expect(interfaces.count == 2)

        let rows = try Self.withFile(out) {
            try Self.fields(
                $0,
                [
                    "frame.number", "frame.time_epoch", "frame.comment", "frame.interface_name", "ip.src", "ip.dst",
                    "vxlan.vni", "frame.interface_id", "frame.len", "frame.cap_len",
                ])
        }
        let expected: [[String]] = [
            [
                "1", "1700000000.123456789", comments[0], "worker2/lxc1", "10.0.1.10", "10.0.2.10", "", "0",
                "\(Self.echo.count)", "\(Self.echo.count)",
            ],
            [
                "2", "1700000000.987654321", comments[1], "worker/cilium_vxlan", "10.0.1.11", "10.0.3.10", "", "1",
                "1500", "\(Self.dns.count)",
            ],
            [
                "3", "1700000001.000000001", comments[2], "worker2/lxc1", "192.168.100.1,10.0.1.10",
                "192.168.100.2,10.0.2.10", "19773", "0", "\(Self.tunnelled.count)", "\(Self.tunnelled.count)",
            ],
        ]
        #expect(rows == expected)
    }

    @Test("the section header is byte for byte the spec's")
    func sectionHeaderBytes() {
        let out = OutputBuffer()
        PcapngEncoder().sectionHeader(into: out)
        // 24 fixed bytes, shb_userappl (4 + 5 bytes + 3 padding), opt_endofopt, the trailing length: 44.
        let expected: [UInt8] =
            [0x0A, 0x0D, 0x0D, 0x0A, 44, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0]
            + [UInt8](repeating: 0xff, count: 8)
            + [4, 0, 5, 0] + Array("vxmon".utf8) + [0, 0, 0] + [0, 0, 0, 0] + [44, 0, 0, 0]
        #expect(Array(out.bytes) == expected)
    }

    @Test("hostile names and comments: tshark reads the file, text is cut at a scalar boundary and sanitized")
    func hostile() throws {
        let encoder = PcapngEncoder()
        let out = OutputBuffer()
        encoder.sectionHeader(application: "vx\u{1b}[2Jmon\u{0}", into: out)
        let controls = "a\tb\nc\u{1b}[31md\u{0}e\u{9b}f\u{7f}g\r"
        let invalid = String(decoding: [0x66, 0xff, 0xfe, 0x80, 0x67] as [UInt8], as: UTF8.self)
        let names = [
            controls, invalid, String(repeating: "x", count: 100_000), String(repeating: "é", count: 50_000), "",
            "a\u{2028}b",
        ]
        for (i, name) in names.enumerated() {
            encoder.interface(name: name, linkType: i % 2 == 0 ? .ethernet : .rawIP, snapLength: 0, into: out)
        }
        // "a" then 3-byte euro signs: the 65000-byte cut falls inside a euro sign.
        let huge = "a" + String(repeating: "€", count: 40_000)
        let comments: [String?] = [
            nil, "", huge, "x\u{0}y\u{1b}[0mz\u{85}w\tv", "1", "12", "123", "1234", "12345",
            String(decoding: [0xf0, 0x9f, 0x98] as [UInt8], as: UTF8.self),
        ]
        var packets = 0
        for (i, comment) in comments.enumerated() {
            let interface = UInt32(i % names.count)
            let bytes = interface % 2 == 0 ? Self.echo : Self.dns
            bytes.withUnsafeBytes {
                encoder.packet(
                    interface: interface, timeNanoseconds: UInt64(i), bytes: $0, originalLength: 0, comment: comment,
                    into: out)
            }
            packets += 1
        }
        // An empty packet, and one larger than Wireshark accepts, whose original length overflows nothing.
        encoder.packet(
            interface: 0, timeNanoseconds: .max, bytes: UnsafeRawBufferPointer(start: nil, count: 0),
            originalLength: .max, comment: huge, into: out)
        [UInt8](repeating: 0xab, count: 300_000).withUnsafeBytes {
            encoder.packet(
                interface: 0, timeNanoseconds: 0, bytes: $0, originalLength: 300_000, comment: nil, into: out)
        }
        packets += 2

        try Self.withFile(out) { path in
            let summary = try runProcess(try Self.tshark(), ["-r", path])
            #expect(summary.status == 0, "tshark: \(summary.stderr)")
            #expect(!summary.stderr.contains("damaged"), "tshark: \(summary.stderr)")
            #expect(lines(summary.stdout).count == packets)

            let rows = try Self.fields(path, ["frame.number", "frame.interface_name", "frame.cap_len", "frame.len"])
            #expect(rows.count == packets)
            // Long values are compared through a Bool: a failure message holding 65 KB helps nobody.
            let shown = rows.map { $0.count > 1 ? $0[1] : "?" }
            #expect(shown[0] == "a?b?c?[31md?e?f?g?")
            #expect(shown[1] == "f\u{FFFD}\u{FFFD}\u{FFFD}g")
            let xs = shown[2] == String(repeating: "x", count: 65_000)
            #expect(xs, "100 KB name: \(shown[2].utf8.count) bytes back")
            let es = shown[3] == String(repeating: "é", count: 32_500)
            #expect(es, "100 KB name of 2-byte scalars: \(shown[3].utf8.count) bytes back")
            #expect(shown[4] == "unknown")  // no if_name written for an empty name; tshark's placeholder
            #expect(shown[5] == "a\u{2028}b")
            #expect(rows.last?.dropFirst(2) == ["262144", "300000"])
            // tshark shows at most INT32_MAX as frame.len; what matters is that the value survived.
            #expect(rows[rows.count - 2][2] == "0")
            #expect((Int(rows[rows.count - 2][3]) ?? 0) >= Int(Int32.max))

            // Comments one per query: their tabs and line breaks would split the fields output.
            let comment = try runProcess(
                try Self.tshark(), ["-r", path, "-Y", "frame.number == 3", "-T", "fields", "-e", "frame.comment"])
            let cut = comment.stdout == "a" + String(repeating: "€", count: 21_666) + "\n"
            #expect(cut, "huge comment: \(comment.stdout.utf8.count) bytes back")
            let padded = try Self.fields(path, ["frame.comment"]).map { $0.first ?? "?" }
            #expect(Array(padded[4...8]) == ["1", "12", "123", "1234", "12345"])
        }
    }

    @Test("the interface table: 5000 distinct interfaces give at most limit + 2 descriptions")
    func interfaceLimit() throws {
        let out = OutputBuffer()
        let interfaces = PcapngInterfaces()
        interfaces.encoder.sectionHeader(into: out)
        let total = 5000
        for i in 0..<total {
            let ethernet = i % 2 == 0
            let bytes = ethernet ? Self.echo : Self.dns
            bytes.withUnsafeBytes {
                interfaces.packet(
                    node: i % 3 == 0 ? nil : "node-\(i % 7)",
                    interface: i % 5 == 0 ? .index(UInt32(i)) : .name("lxc\(i)"),
                    linkType: ethernet ? .ethernet : .rawIP, timeNanoseconds: 1_700_000_000_000_000_000 + UInt64(i),
                    bytes: $0, originalLength: UInt32($0.count), comment: nil, into: out)
            }
        }
        let limit = PcapngInterfaces.defaultLimit
        #expect(interfaces.count == UInt32(limit + 2))
        // A name seen before the limit keeps its id afterwards.
        let again = interfaces.id(node: "node-1", interface: .name("lxc1"), linkType: .rawIP, into: out)
        #expect(again == 1)

        try Self.withFile(out) { path in
            let rows = try Self.fields(path, ["frame.interface_id", "frame.interface_name"])
            #expect(rows.count == total)
            let ids = Set(rows.map { $0[0] })
            #expect(ids.count == limit + 2)
            #expect(ids.compactMap { Int($0) }.max() == limit + 1)
            var wrong: [String] = []
            for (i, row) in rows.enumerated() {
                let expected: String
                if i >= limit {
                    expected = "other"
                } else {
                    let name = i % 5 == 0 ? "if\(i)" : "lxc\(i)"
                    expected = i % 3 == 0 ? name : "node-\(i % 7)/\(name)"
                }
                if row.count != 2 || row[1] != expected {
                    wrong.append("packet \(i + 1): \(row), expected \(expected)")
                }
            }
            #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(3))")
            // capinfos counts the descriptions in the file, used or not.
            let capinfos = try #require(which("capinfos"), "capinfos (installed with tshark) is not on PATH")
            let info = try runProcess(capinfos, ["-I", path])
            #expect(info.status == 0, "capinfos: \(info.stderr)")
            #expect(info.stdout.contains("Number of interfaces in file: \(limit + 2)"), "\(info.stdout.prefix(400))")
        }
    }

    @Test("the interface table: a small limit, the snap length, and reset for a new section")
    func smallLimit() throws {
        let out = OutputBuffer()
        let interfaces = PcapngInterfaces(limit: 2, snapLength: 20)
        interfaces.encoder.sectionHeader(into: out)
        let seen: [(String, PcapngLinkType, [UInt8])] = [
            ("a", .ethernet, Self.echo), ("b", .rawIP, Self.dns), ("c", .ethernet, Self.echo), ("d", .rawIP, Self.dns),
            ("a", .ethernet, Self.tunnelled), ("e", .ethernet, Self.echo),
        ]
        for (i, (name, linkType, bytes)) in seen.enumerated() {
            bytes.withUnsafeBytes {
                interfaces.packet(
                    node: "n", interface: .name(name), linkType: linkType, timeNanoseconds: UInt64(i), bytes: $0,
                    originalLength: UInt32($0.count), comment: nil, into: out)
            }
        }
        #expect(interfaces.count == 4)
        let rows = try Self.withFile(out) {
            try Self.fields($0, ["frame.interface_id", "frame.interface_name", "frame.cap_len", "frame.len"])
        }
        #expect(
            rows == [
                ["0", "n/a", "20", "\(Self.echo.count)"], ["1", "n/b", "20", "\(Self.dns.count)"],
                ["2", "other", "20", "\(Self.echo.count)"], ["3", "other", "20", "\(Self.dns.count)"],
                ["0", "n/a", "20", "\(Self.tunnelled.count)"], ["2", "other", "20", "\(Self.echo.count)"],
            ])

        interfaces.reset()
        let before = out.count
        #expect(interfaces.id(node: "n", interface: .name("c"), linkType: .ethernet, into: out) == 0)
        #expect(out.count > before)
        #expect(interfaces.count == 1)
    }
}
