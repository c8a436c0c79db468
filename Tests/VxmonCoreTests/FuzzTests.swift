import Foundation
import Testing
import VxmonCore
import VxmonWire

// A deterministic pseudo-random fuzz of the whole decode + render path: random samples (biased towards
// real message types and versions) and mutated vector / gopacket-case samples go through EventDecoder
// and every renderer (text info/debug/verbose/hex/numeric, JSON, YAML; 1.13 and latest layouts).
// Nothing may trap, every JSON line must parse, and a decode error must print nothing.
// (It lives in VxmonCoreTests because VxmonWireTests cannot see EventDecoder or the renderers.)

/// xorshift64* with a fixed seed: the same inputs on every run and every machine.
struct XorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9e37_79b9_7f4a_7c15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_f491_4f6c_dd1d
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next() >> 32) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// Long-lived pipelines, one per renderer configuration, reused across inputs.
final class FuzzHarness {
    struct Config {
        var mode: RenderMode
        var release: CiliumRelease
        var pipeline: EventPipeline
        var sink: DiagnosticSink
    }
    var configs: [Config] = []
    var inputs = 0
    var decoded = 0
    var jsonLines = 0

    init() {
        for release in CiliumRelease.allCases {
            for mode in RenderMode.all {
                let sink = DiagnosticSink()
                configs.append(Config(mode: mode, release: release, pipeline: makePipeline(mode, release: release, sink: sink), sink: sink))
            }
        }
    }

    func run(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        inputs += 1
        let decodes: [CiliumRelease: Bool] = Dictionary(
            uniqueKeysWithValues: CiliumRelease.allCases.map { release in
                var event = Event()
                let ok = (try? EventDecoder(release: release).decode(body.span.bytes, into: &event)) != nil
                return (release, ok)
            })
        if decodes[.v1_13] == true { decoded += 1 }
        for c in configs {
            c.pipeline.out.removeAll()
            c.sink.lines.removeAll()
            let errorsBefore = c.pipeline.stats.decodeErrors
            c.pipeline.sample(body.span.bytes, cpu: 3, timeNanoseconds: 1_700_000_000_000_000_000, index: inputs, offset: 0)
            let output = c.pipeline.out.string
            if decodes[c.release] != true {
                // Counted always; reported one line each up to the pipeline's bound, then only counted.
                let reported = c.pipeline.decodeErrorLines <= EventPipeline.maxDecodeErrorLines ? 1 : 0
                if !output.isEmpty || c.sink.lines.count != reported || c.pipeline.stats.decodeErrors != errorsBefore + 1 {
                    Issue.record("decode error must print nothing, be counted and report once: \(c.mode) \(hex(body))", sourceLocation: sourceLocation)
                }
                continue
            }
            if !c.sink.lines.isEmpty {
                Issue.record("unexpected diagnostics \(c.sink.lines) for \(hex(body))", sourceLocation: sourceLocation)
            }
            if c.mode.format == .json {
                let ls = lines(output)
                if ls.count != 1 || !output.hasSuffix("\n") {
                    Issue.record("JSON must be exactly one line: \(output)", sourceLocation: sourceLocation)
                }
                for l in ls {
                    jsonLines += 1
                    if (try? JSONSerialization.jsonObject(with: Data(l.utf8))) as? [String: Any] == nil {
                        Issue.record("invalid JSON for \(hex(body)):\n\(l)", sourceLocation: sourceLocation)
                    }
                }
            }
            if c.mode.format == .yaml && !output.hasPrefix("---\n") {
                Issue.record("YAML document must start with ---: \(output)", sourceLocation: sourceLocation)
            }
            if c.mode.format == .text && output.utf8.contains(where: { $0 < 0x20 && $0 != 0x0a && $0 != 0x09 }) {
                Issue.record("control characters in text output for \(hex(body))", sourceLocation: sourceLocation)
            }
        }
    }
}

func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// Seed corpus: every vector sample, every gopacket case wrapped in a trace v1, and the bulk samples.
let fuzzCorpus: [[UInt8]] = {
    var corpus = VectorSample.all.map(\.body)
    corpus += GopacketCase.all.map { traceV1($0.packet) }
    corpus += parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec")).prefix(300).map(\.body)
    return corpus
}()

@Suite("Deterministic fuzz of decode + render")
struct FuzzTests {
    @Test("10,000 random samples")
    func randomSamples() {
        var rng = XorShift(seed: 0x5eed_0001)
        let harness = FuzzHarness()
        for _ in 0..<10_000 {
            let length = rng.below(4) == 0 ? rng.below(48) : rng.below(220)
            var body = (0..<length).map { _ in rng.byte() }
            if !body.isEmpty && rng.chance(85) { body[0] = UInt8(1 + rng.below(8)) }  // mostly real types
            if body.count > 15 && rng.chance(70) {
                body[14] = UInt8(rng.below(4))  // plausible versions
                body[15] = 0
            }
            if body.count > 13 && rng.chance(50) {
                let cap = rng.below(max(1, body.count))
                body[12] = UInt8(cap & 0xff)
                body[13] = UInt8(cap >> 8)
            }
            harness.run(body)
        }
        #expect(harness.inputs == 10_000)
        #expect(harness.decoded > 3_000)
        #expect(harness.jsonLines > 3_000)
    }

    @Test("10,000 mutated vector and case samples")
    func mutatedSamples() {
        var rng = XorShift(seed: 0x5eed_0002)
        let harness = FuzzHarness()
        let corpus = fuzzCorpus
        #expect(corpus.count > 400)
        for _ in 0..<10_000 {
            var body = corpus[rng.below(corpus.count)]
            switch rng.below(6) {
            case 0:  // flip bits in the packet area
                for _ in 0..<(1 + rng.below(8)) where !body.isEmpty {
                    body[rng.below(body.count)] ^= UInt8(1) << UInt8(rng.below(8))
                }
            case 1:  // overwrite bytes anywhere
                for _ in 0..<(1 + rng.below(4)) where !body.isEmpty {
                    body[rng.below(body.count)] = rng.byte()
                }
            case 2:  // truncate
                body = Array(body.prefix(rng.below(body.count + 1)))
            case 3:  // extend with garbage (kernel padding, bogus len_cap)
                body += (0..<rng.below(64)).map { _ in rng.byte() }
            case 4:  // interesting values in header fields
                let interesting: [UInt8] = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff]
                for _ in 0..<(1 + rng.below(3)) where body.count > 0 {
                    body[rng.below(min(body.count, 64))] = interesting[rng.below(interesting.count)]
                }
            default:  // splice two corpus entries
                let other = corpus[rng.below(corpus.count)]
                let cut = rng.below(body.count + 1)
                body = Array(body.prefix(cut)) + Array(other.dropFirst(rng.below(other.count + 1)))
            }
            harness.run(body)
        }
        #expect(harness.inputs == 10_000)
        #expect(harness.decoded > 5_000)
    }

    @Test("the seed corpus itself renders cleanly")
    func corpus() {
        let harness = FuzzHarness()
        for body in fuzzCorpus { harness.run(body) }
        #expect(harness.decoded == fuzzCorpus.count - 1)  // trace_unknown_version is the only broken one
    }
}
