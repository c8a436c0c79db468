import Foundation
import Testing
import VxmonWire

@testable import VxmonCore

// The metrics' sample memo (Sources/VxmonCore/Metrics/SampleMemo.swift) counts a sample that equals
// one already counted, in every byte it compares, without decoding it. Its claim: the bytes it
// ignores never change what the decoder makes of a sample's labels. The oracle is the decoder
// itself, on the memo's own ignored bytes filled at random, and on streams counted with the memo
// against the same streams decoded sample by sample (HubbleMetrics with `memo: false`).

/// Every sample of the recordings in the repository: the Cilium vectors, the derived ones, the
/// journey fixture and the README's samples, plus TCP packets with options (timestamps among them),
/// over IPv4, IPv6 and VXLAN.
enum MemoCorpus {
    static let samples: [[UInt8]] = {
        var out: [[UInt8]] = []
        let directories = [
            Fixtures.vectors, Fixtures.root + "/vectors-1.13-derived", Fixtures.root + "/journey",
            Fixtures.root + "/../../samples",
        ]
        for directory in directories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for file in files.sorted() where file.hasSuffix(".vxrec") {
                let parser = VxrecParser()
                var consumer = RecordingConsumer()
                Fixtures.bytes(directory + "/" + file).withUnsafeBytes { parser.feed($0) }
                try? parser.parse(into: &consumer)
                for case .sample(let bytes, _, _, _, _) in consumer.items { out.append(bytes) }
            }
        }
        return out + tcpWithOptions + gopacketCases
    }()

    /// The packets of Tests/Fixtures/gopacket-cases.txt and gopacket-fuzz-cases.txt (IPv6 extension
    /// and hop-by-hop headers, jumbograms, fragments, tunnels, cut and malformed headers), each as a
    /// trace (to-endpoint), a drop (Policy denied), and a trace of an L3 device (Cilium 1.18's flag:
    /// the packet from its IP header; under 1.13 the flag is not read).
    static var gopacketCases: [[UInt8]] {
        var out: [[UInt8]] = []
        for c in GopacketCase.all + GopacketCase.load("gopacket-fuzz-cases.txt") {
            let packet = c.packet
            func header(type: UInt8, subtype: UInt8, length: Int, flags: UInt8 = 0, _ packet: [UInt8]) -> [UInt8] {
                var h = [UInt8](repeating: 0, count: length)
                h[0] = type
                h[1] = subtype
                h[4] = 0x5a
                h[8] = UInt8(packet.count & 0xff)
                h[9] = UInt8(packet.count >> 8 & 0xff)
                h[12] = UInt8(packet.count & 0xff)
                h[13] = UInt8(packet.count >> 8 & 0xff)
                if type == 4 {
                    h[14] = 1
                    h[27] = flags
                }
                return h + packet
            }
            out.append(header(type: 4, subtype: 0, length: 48, packet))
            out.append(header(type: 1, subtype: 133, length: 36, packet))
            if packet.count > 14, (packet[12] == 0x08 && packet[13] == 0x00) || (packet[12] == 0x86 && packet[13] == 0xdd) {
                out.append(header(type: 4, subtype: 4, length: 48, flags: 0x02, Array(packet[14...])))
            }
        }
        return out
    }

    /// Trace v1 (to-overlay) of TCP segments whose options hold MSS, SACK-permitted, timestamps,
    /// NOPs and a window scale, in IPv4, IPv6 and a VXLAN frame.
    static var tcpWithOptions: [[UInt8]] {
        let options: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7]
        func tcp(_ flags: UInt8) -> [UInt8] {
            [0xc3, 0x50, 0x00, 0x50, 0, 0, 0x10, 0, 0, 0, 0, 0, UInt8((20 + options.count) / 4) << 4, flags, 0xfa, 0xf0, 0, 0, 0, 0]
                + options
        }
        func ipv4(_ payload: [UInt8], proto: UInt8) -> [UInt8] {
            let length = 20 + payload.count
            return [0x45, 0, UInt8(length >> 8), UInt8(length & 0xff), 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 10, 0, 2, 10, 10, 0, 1, 10]
                + payload
        }
        func ipv6(_ payload: [UInt8]) -> [UInt8] {
            [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), 6, 64]
                + [UInt8](repeating: 0xfd, count: 15) + [1] + [UInt8](repeating: 0xfd, count: 15) + [2] + payload
        }
        func ethernet(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
            [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, UInt8(type >> 8), UInt8(type & 0xff)] + payload
        }
        func trace(_ packet: [UInt8]) -> [UInt8] {
            var h = [UInt8](repeating: 0, count: 48)
            h[0] = 4
            h[1] = 4  // to-overlay
            h[4] = 0xaa
            h[8] = UInt8(packet.count & 0xff)
            h[9] = UInt8(packet.count >> 8)
            h[12] = UInt8(packet.count & 0xff)
            h[13] = UInt8(packet.count >> 8)
            h[14] = 1
            h[16] = 0x10
            h[20] = 0x20
            return h + packet
        }
        let vxlanInner = ethernet(0x0800, ipv4(tcp(0x12), proto: 6))
        let udp: [UInt8] =
            [0xaa, 0xbb, 0x21, 0x18, UInt8((16 + vxlanInner.count) >> 8), UInt8((16 + vxlanInner.count) & 0xff), 0, 0]
            + [0x08, 0, 0, 0, 0, 0x1f, 0x40, 0] + vxlanInner
        // gopacket's jumbogram quirk: an IPv6 payload length of 0 with a jumbo option keeps the
        // payload at the hop-by-hop header, so TCP is read over the options (its sequence number is
        // the jumbo length).
        var jumbo = ipv6([0x06, 0x00, 0xc2, 0x04, 0x00, 0x01, 0x00, 0x00] + Array(tcp(0x10)[8...]))
        jumbo[4] = 0
        jumbo[5] = 0
        jumbo[6] = 0
        return [
            trace(ethernet(0x0800, ipv4(tcp(0x02), proto: 6))),
            trace(ethernet(0x86dd, ipv6(tcp(0x11)))),
            trace(ethernet(0x0800, ipv4(udp, proto: 17))),
            trace(ethernet(0x86dd, jumbo)),
        ]
    }
}

/// The exposition of Hubble's families, series by series: `name{labels}` -> value.
func memoSeries(_ m: HubbleMetrics) -> [String: Double] {
    let out = OutputBuffer(capacity: 1 << 16)
    let w = MetricsWriter(out: out, format: .text)
    for t in m.tables { w.family(t) }
    var series: [String: Double] = [:]
    for line in out.string.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        series[String(line[..<space])] = Double(line[line.index(after: space)...])
    }
    return series
}

@Suite("metrics: the sample memo")
struct SampleMemoTests {
    static let releases: [CiliumRelease] = [.v1_13, .latest]

    @Test("filling exactly the bytes the memo ignores (with zeros, with 0xFF, at random) never changes a label: each sample and 24 variants of it, decoded one by one, count the sample's series 25 times")
    func ignoredBytesChangeNoLabel() throws {
        var rng = SystemRandomNumberGenerator()
        var remembered = 0
        for release in Self.releases {
            var decoder = EventDecoder(release: release)
            var event = Event()
            // Two tables for the whole corpus (one pair per sample would hold the memory of thousands
            // of tables while the other suites measure their RSS): what each sample adds is the
            // difference of two expositions.
            let reference = HubbleMetrics(nodeNames: ["n"], release: release, memo: false)
            let m = HubbleMetrics(nodeNames: ["n"], release: release, memo: false)
            var referenceSeries = memoSeries(reference)
            var mSeries = memoSeries(m)
            func added(_ after: [String: Double], _ before: [String: Double]) -> [String: Double] {
                after.compactMapValues { $0 }.filter { $0.value != (before[$0.key] ?? 0) }
                    .reduce(into: [:]) { $0[$1.key] = $1.value - (before[$1.key] ?? 0) }
            }
            for sample in MemoCorpus.samples {
                let compared: [Bool]? = sample.withUnsafeBytes { raw in
                    guard (try? decoder.decode(raw.bytes, into: &event)) != nil else { return nil }
                    return withUnsafePointer(to: &event) { SampleMemo.comparedBytes(raw.bytes, event: $0) }
                }
                guard let compared else { continue }
                remembered += 1
                sample.withUnsafeBytes { _ = reference.count(sample: $0.bytes, node: 0) }
                let referenceAfter = memoSeries(reference)
                let once = added(referenceAfter, referenceSeries)
                referenceSeries = referenceAfter
                let variants = 24
                for v in 0...variants {
                    var bytes = sample
                    // The ignored bytes all 0, all 0xFF, then at random.
                    for i in bytes.indices where v > 0 && !compared[i] {
                        bytes[i] = v == 1 ? 0 : v == 2 ? 0xff : UInt8.random(in: 0...255, using: &rng)
                    }
                    bytes.withUnsafeBytes { _ = m.count(sample: $0.bytes, node: 0) }
                }
                let mAfter = memoSeries(m)
                let all = added(mAfter, mSeries)
                mSeries = mAfter
                #expect(Set(all.keys) == Set(once.keys), "\(release) \(sample.prefix(64)): \(all) vs \(once)")
                for (key, value) in once {
                    #expect(all[key] == value * Double(variants + 1), "\(release) \(key)")
                }
            }
        }
        // The corpus must reach the memo: traces, drops, policy verdicts and captures of every layout.
        #expect(remembered > 4000, "\(remembered) samples the memo would remember")
    }

    @Test("a stream counted with the memo equals the same stream decoded sample by sample: repeats, interleaved nodes, byte flips anywhere (compared bytes too), more kinds than entries (evictions), published midway and at the end")
    func memoEqualsDecoding() throws {
        var rng = SystemRandomNumberGenerator()
        for release in Self.releases {
            let nodes = ["a", "b", "c"]
            let memo = HubbleMetrics(nodeNames: nodes, release: release)
            let plain = HubbleMetrics(nodeNames: nodes, release: release, memo: false)
            var stream: [([UInt8], Int)] = []
            let corpus = MemoCorpus.samples
            for round in 0..<4 {
                for (i, sample) in corpus.enumerated() {
                    var bytes = sample
                    // Every third sample of a round later than the first: one byte changed anywhere.
                    if round > 0 && i % 3 == 0 && !bytes.isEmpty {
                        bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                    }
                    stream.append((bytes, (i + round) % nodes.count))
                    // Repeats close together, as a flow's packets come.
                    if i % 2 == 0 { stream.append((bytes, (i + round) % nodes.count)) }
                }
            }
            for (k, (bytes, node)) in stream.enumerated() {
                bytes.withUnsafeBytes {
                    let a = memo.count(sample: $0.bytes, node: node)
                    let b = plain.count(sample: $0.bytes, node: node)
                    #expect(a == b)
                }
                if k == stream.count / 2 {
                    memo.publish()
                    #expect(memoSeries(memo) == memoSeries(plain), "\(release): midway")
                }
            }
            memo.publish()
            let counted = memoSeries(memo)
            #expect(counted == memoSeries(plain), "\(release)")
            #expect(counted.values.reduce(0, +) > 0)
            // The memo was used: more than a tenth of the stream was counted from it (repeats of the
            // samples it can remember; the gopacket cases are mostly cut or malformed, and decoded).
            #expect(UInt64(stream.count) - memo.memoMisses > UInt64(stream.count) / 10, "\(memo.memoMisses) of \(stream.count) decoded")
        }
    }

    @Test("a sample counted from the memo reaches the exposition when the writer publishes (the agent: every 50 ms), not before")
    func publishShowsMemoCounts() throws {
        let sample = MemoCorpus.tcpWithOptions[0]
        let m = HubbleMetrics(nodeNames: ["n"])
        // Decoded twice (the doorkeeper remembers on the second), then counted from the memo.
        for _ in 0..<5 { sample.withUnsafeBytes { _ = m.count(sample: $0.bytes, node: 0) } }
        #expect(m.memoMisses == 2)
        let before = memoSeries(m)
        let key = #"hubble_flows_processed_total{node="n",protocol="TCP",subtype="to-overlay",type="Trace",verdict="FORWARDED"}"#
        #expect(before[key] == 2, "\(before)")
        m.publish()
        #expect(memoSeries(m)[key] == 5)
    }
}
