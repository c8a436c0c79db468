import Foundation
import Testing
import VxmonCore

// Interface names come from outside (recordings, other namespaces): per node, and never able to put
// a control character on a terminal or break a JSON line, whatever bytes they hold.

@Suite("interface names")
struct InterfaceNameTests {
    /// A trace v1 to-overlay record without packet bytes, naming `ifindex` (layout: spec, trace_notify).
    static func trace(ifindex: UInt32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 48)
        b[0] = 4  // CILIUM_NOTIFY_TRACE
        b[1] = 4  // to-overlay
        b[14] = 1  // version
        b[16] = 0x39; b[17] = 0x30  // src_label 12345
        withUnsafeBytes(of: ifindex.littleEndian) { for i in 0..<4 { b[28 + i] = $0[i] } }
        return b
    }

    static func render(_ format: OutputFormat, _ setup: (EventPipeline) -> Void, _ events: [(String?, UInt32)])
        -> String
    {
        let pipeline = EventPipeline(format: format, verbosity: .verbose, diagnostics: { _ in })
        setup(pipeline)
        for (node, ifindex) in events {
            pipeline.node = node
            pipeline.sample(trace(ifindex: ifindex).span.bytes, cpu: 0, timeNanoseconds: 0, index: 1, offset: -1)
        }
        return pipeline.out.string
    }

    @Test("names are per node, small and large ifindexes alike; an unknown one prints as a number")
    func perNode() {
        let text = Self.render(
            .text,
            { p in
                p.names.set(3, "cilium_vxlan", node: "worker")
                p.names.set(3, "eth0", node: "worker2")
                p.names.set(70_000, "lxc-big", node: "worker")
                p.names.set(3, "no-node")
            },
            [("worker", 3), ("worker2", 3), ("worker", 70_000), (nil, 3), ("worker2", 70_000), ("worker", 4)])
        let interfaces = text.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: "interface ") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != "," })
        }
        #expect(interfaces == ["cilium_vxlan", "eth0", "lxc-big", "no-node", "70000", "4"])
    }

    @Test("many nodes (a recording can name any number) and renamed interfaces")
    func manyNodes() {
        let names = InterfaceNames()
        for n in 0..<40 {
            names.set(3, "eth-\(n)", node: "node-\(n)")
            names.set(3, "eth-\(n)", node: "node-\(n)")  // repeated, as recordings do
        }
        names.set(3, "renamed", node: "node-39")
        names.set(3, "renamed-too", node: "node-2")
        let out = OutputBuffer()
        for n in [0, 1, 2, 15, 16, 17, 38, 39] {
            names.append(ifindex: 3, node: "node-\(n)", to: out)
            out.append(byte: 32)
        }
        names.append(ifindex: 3, node: "node-40", to: out)
        #expect(out.string == "eth-0 eth-1 renamed-too eth-15 eth-16 eth-17 eth-38 renamed 3")
        #expect(names.name(3, node: "node-39") == "renamed")
        #expect(names.name(3, node: "node-20") == "eth-20")
        #expect(names.name(4, node: "node-20") == nil)
    }

    static let hostile = "a\"b\\c\nd\u{1b}[31me\u{9b}f\u{7f}g\u{2028}h\u{2029}i\u{e9}\u{65e5}\u{1f600}\tj"

    @Test("a hostile name: text shows no control character, JSON escapes it and round-trips")
    func hostileName() throws {
        let text = Self.render(.text, { $0.names.set(7, Self.hostile, node: "n") }, [("n", 7)])
        let scalars = text.unicodeScalars.filter { $0 != "\n" }
        #expect(!scalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }, "\(text.debugDescription)")
        #expect(text.contains("a\"b\\c?d?[31me?f?g\u{2028}h\u{2029}i\u{e9}\u{65e5}\u{1f600}?j"))

        let json = Self.render(.json, { $0.names.set(7, Self.hostile, node: "n") }, [("n", 7)])
        #expect(json.hasSuffix("\n") && json.dropLast().split(separator: "\n").count == 1)
        #expect(!json.dropLast().unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
        #expect(json.contains(#""name":"a\"b\\c\nd\u001b[31me\u009bf\u007fg\u2028h\u2029i\#u{e9}\#u{65e5}\#u{1f600}\tj""#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let name = (object["interface"] as? [String: Any])?["name"] as? String
        #expect(name == Self.hostile)
    }
}

@Suite("bidi and format controls never reach a terminal")
struct BidiTests {
    static let bidi = "a\u{202E}b\u{2066}c\u{200F}d\u{061C}e\u{FEFF}f\u{200B}g\u{2069}h"

    @Test("text replaces them; JSON and YAML escape them and round-trip (Foundation and PyYAML-free JSON parse)")
    func bidiControls() throws {
        let text = InterfaceNameTests.render(.text, { $0.names.set(7, Self.bidi, node: "n") }, [("n", 7)])
        #expect(!text.unicodeScalars.contains { OutputBuffer.isBidiControl($0.value) })
        #expect(text.contains("a?b?c?d?e?f?g?h"))
        let json = InterfaceNameTests.render(.json, { $0.names.set(7, Self.bidi, node: "n") }, [("n", 7)])
        #expect(!json.unicodeScalars.contains { OutputBuffer.isBidiControl($0.value) })
        #expect(json.contains(#"a\u202eb\u2066c\u200fd\u061ce\ufefff\u200bg\u2069h"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((object["interface"] as? [String: Any])?["name"] as? String == Self.bidi)
        let yaml = InterfaceNameTests.render(.yaml, { $0.names.set(7, Self.bidi, node: "n") }, [("n", 7)])
        #expect(!yaml.unicodeScalars.contains { OutputBuffer.isBidiControl($0.value) })
    }
}

@Suite("interface names: memory bounded whatever a recording says")
struct InterfaceNameBoundsTests {
    @Test("a million renames of one interface keep the pool small, and the last name wins")
    func renames() {
        let names = InterfaceNames()
        for i in 0..<1_000_000 { names.set(3, "lxc\(i % 2 == 0 ? "" : "longer-name-")\(i)", node: "n") }
        #expect(names.poolBytes < 256 * 1024)
        #expect(names.name(3, node: "n") == "lxclonger-name-999999")
        let out = OutputBuffer(capacity: 64)
        names.append(ifindex: 3, node: "n", to: out)
        #expect(out.string == "lxclonger-name-999999")
    }

    @Test("names, nodes and name lengths are capped; the rest render as numbers")
    func caps() {
        let names = InterfaceNames()
        for i in 0..<(InterfaceNames.maxEntries + 10) { names.set(UInt32(i), "if\(i)", node: "n") }
        #expect(names.dropped == 10)
        let nodes = InterfaceNames()
        for i in 0..<(InterfaceNames.maxNodes + 5) { nodes.set(1, "x", node: "node\(i)") }
        #expect(nodes.dropped == 5)
        #expect(nodes.name(1, node: "node4000") == "x" && nodes.name(1, node: "node4100") == nil)
        names.set(2, String(repeating: "é", count: 1000), node: "n")
        #expect((names.name(2, node: "n")?.utf8.count ?? 0) <= InterfaceNames.maxNameBytes)
        let out = OutputBuffer(capacity: 64)
        names.append(ifindex: UInt32(InterfaceNames.maxEntries + 5), node: "n", to: out)
        #expect(out.string == "\(InterfaceNames.maxEntries + 5)")
    }
}
