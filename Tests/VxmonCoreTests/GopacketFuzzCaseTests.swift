import Testing
import VxmonCore
import VxmonWire

// Tests/Fixtures/gopacket-fuzz-cases.txt: 1,186 random, truncated and mutated frames
// (tools/gopacket-diff/fuzz.py, seed 101) with what real gopacket v1.1.19 prints for them through
// Cilium 1.13's dissect logic (tools/gopacket-diff/main.go). They cover what hand-written cases
// rarely reach: IPv4 options of every shape, IPv6 hop-by-hop options and extension headers, IP-in-IP
// (including a broken inner header), odd TCP options and data offsets, UDP length 0 and < 8, LLC,
// VLAN, ARP and unknown EtherTypes. Tunnel decoding is off, so vxmon must match gopacket exactly.

/// Renders the packet as the payload of a trace v1 event with tunnel decoding off; returns the
/// dissection lines (after separator and header) and the summary of the default line.
private func render(_ packet: [UInt8]) -> (lines: [String], summary: String) {
    let event = traceV1(packet)
    func run(_ verbosity: Verbosity) -> String {
        let pipeline = EventPipeline(
            format: .text, verbosity: verbosity, tunnelPorts: .none, diagnostics: { _ in })
        pipeline.sample(event.span.bytes, cpu: 0, timeNanoseconds: 0, index: 1, offset: -1)
        return pipeline.out.string
    }
    let vv = lines(run(.verbose))
    let line = run(.info)
    let marker = "orig-ip 0.0.0.0: "
    let summary = line.split(separator: "\n").first.flatMap { l -> String? in
        guard let r = l.range(of: marker) else { return nil }
        return String(l[r.upperBound...])
    }
    return (Array(vv.dropFirst(2)), summary ?? "")
}

@Suite("gopacket differential cases")
struct GopacketFuzzCaseTests {
    static let cases = GopacketCase.load("gopacket-fuzz-cases.txt")

    @Test("the fuzz case file is present and complete")
    func present() {
        #expect(Self.cases.count == 1186)
        #expect(Self.cases.allSatisfy { !$0.packet.isEmpty })
    }

    @Test("dissection and summary equal gopacket's", arguments: cases)
    func matches(_ c: GopacketCase) {
        let (got, summary) = render(c.packet)
        #expect(got == c.lines)
        #expect(summary == c.summary)
    }
}
