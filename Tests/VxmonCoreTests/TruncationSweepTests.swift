import Foundation
import Testing
import VxmonCore
import VxmonWire

// Every sample record of every vector, cut at every length from 0 to its full length, decoded and
// rendered in every mode: nothing traps; a cut inside the notify header is an EventDecodeError that is
// reported on diagnostics (and prints nothing); a cut anywhere in the packet still renders.

/// Header length of a sample, from Cilium 1.13's structs (not from EventLayout), or nil when no length
/// makes the record decodable (an unknown trace version).
func ciliumHeaderLength(_ body: [UInt8]) -> Int? {
    switch body.first {
    case nil: return 1
    case 1: return 36  // drop_notify v1
    case 2: return 20  // debug_msg
    case 3: return 24  // debug_capture_msg
    case 4:  // trace_notify: v0 32, v1 48
        guard body.count > 14 else { return 48 }
        switch body[14] {
        case 0: return 32
        case 1: return 48
        default: return nil
        }
    case 5: return 32  // policy_verdict_notify (1.13)
    case 6: return 24  // capture_msg (recorder)
    case 7: return 38  // trace_sock_notify (1.13, packed)
    default: return 1  // unknown type: the type byte is enough
    }
}

struct VectorSample: Sendable, CustomStringConvertible {
    var name: String
    var cpu: Int
    var body: [UInt8]
    var description: String { name }

    static let all: [VectorSample] = Fixtures.vectorNames.flatMap { name in
        parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/\(name).vxrec"))
            .filter { $0.kind == 1 }
            .map { VectorSample(name: name, cpu: Int($0.cpu), body: $0.body) }
    }
}

@Suite("Truncation sweep over the vector samples")
struct TruncationSweepTests {
    @Test("34 vectors carry a sample")
    func sampleCount() {
        #expect(VectorSample.all.count == 34)
    }

    @Test("every cut decodes or is reported, and renders in every mode", arguments: VectorSample.all)
    func sweep(_ sample: VectorSample) throws {
        let decoder = EventDecoder()
        let header = ciliumHeaderLength(sample.body)
        let full = sample.body.count
        let fullOutputs = Dictionary(uniqueKeysWithValues: RenderMode.all.map { ($0, renderSample(sample.body, $0, cpu: sample.cpu).output) })
        for cut in 0...full {
            let prefix = Array(sample.body.prefix(cut))
            var event = Event()
            var threw = false
            do {
                try decoder.decode(prefix.span.bytes, into: &event)
            } catch {
                threw = true
            }
            let mustFail = header.map { cut < $0 } ?? true
            #expect(threw == mustFail, "\(sample.name) cut at \(cut) of \(full): threw=\(threw)")
            if !threw {
                #expect(event.packetLength <= max(0, cut - event.packetOffset))
            }

            for mode in RenderMode.all {
                let r = renderSample(prefix, mode, cpu: sample.cpu)
                if mustFail {
                    #expect(r.output == "", "\(sample.name) cut \(cut) \(mode): \(r.output)")
                    #expect(r.diagnostics.count == 1, "\(sample.name) cut \(cut) \(mode)")
                    #expect(r.stats.decodeErrors == 1)
                } else {
                    #expect(r.diagnostics.isEmpty, "\(sample.name) cut \(cut) \(mode): \(r.diagnostics)")
                    #expect(r.stats.events == 1)
                    #expect(r.output.isEmpty == fullOutputs[mode]!.isEmpty, "\(sample.name) cut \(cut) \(mode)")
                    if mode.format == .json, !r.output.isEmpty {
                        #expect(r.output.hasSuffix("\n") && lines(r.output).count == 1)
                        let parsed = try? JSONSerialization.jsonObject(with: Data(r.output.utf8))
                        #expect(parsed is [String: Any], "\(sample.name) cut \(cut): invalid JSON \(r.output)")
                    }
                }
            }
        }
    }
}
