import Foundation
import Testing
import VxmonCore
import VxmonHubble

// Each CLI flow filter and its Hubble FlowFilter twin select the same flows: the CLI's filter engine
// (FilterParser + the pipeline's matcher) on one side, and on the other the Hubble servers' own path
// (FlowIngest into a ring, messages built for a reader, HubbleFilter as GetFlows applies it), on the
// lab's recordings in samples/. Events are told apart by node and kernel time.

/// Collects the (node, time) of every event that reaches it.
final class EventKeys: EventSink {
    var keys: [String] = []
    func event(_ event: borrowing Event, record: RawSpan) { keys.append("\(event.flow.node ?? "")@\(event.flow.timeNanoseconds)") }
    func lost(_ lost: LostSamples) {}
}

struct FilterTwinTests {
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples").path

    static func feed(_ path: String, into pipeline: EventPipeline) throws {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var consumer = pipeline
        let parser = VxrecParser()
        data.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
    }

    /// What the CLI's filter keeps, reading as the servers do (`--cilium latest`).
    static func cli(_ path: String, _ arguments: [String]) throws -> [String] {
        let pipeline = EventPipeline(
            format: .none, release: .latest, fd: -1, filter: try FilterParser.parse(arguments), diagnostics: { _ in })
        let keys = EventKeys()
        pipeline.add(keys)
        try feed(path, into: pipeline)
        return keys.keys
    }

    /// What GetFlows with `filter` as its whitelist returns from the flows the servers would hold.
    static func grpc(_ path: String, _ filter: Flow_FlowFilter) throws -> [String] {
        let ring = FlowRing(capacity: 1 << 16)
        let pipeline = EventPipeline(format: .none, release: .latest, fd: -1, diagnostics: { _ in })
        pipeline.add(FlowIngest(rings: [:], pods: pipeline.pods, names: pipeline.names, fallback: ring))
        try feed(path, into: pipeline)
        let hubble = try HubbleFilter(whitelist: [filter], blacklist: [])
        return ring.read(from: 0, limit: ring.capacity).entries.map(\.1).filter { hubble.matches($0) }.map {
            "\($0.nodeName)@\(UInt64($0.flow.time.seconds) * 1_000_000_000 + UInt64($0.flow.time.nanos))"
        }
    }

    static let twins: [(cli: [String], grpc: Flow_FlowFilter)] = {
        func f(_ body: (inout Flow_FlowFilter) -> Void) -> Flow_FlowFilter {
            var filter = Flow_FlowFilter()
            body(&filter)
            return filter
        }
        return [
            (["--from-ip", "10.0.2.10"], f { $0.sourceIp = ["10.0.2.10"] }),
            (["--to-ip", "10.0.1.0/24"], f { $0.destinationIp = ["10.0.1.0/24"] }),
            (["--from-pod", "worker2-pod1"], f { $0.sourcePod = ["default/worker2-pod1"] }),
            (["--to-pod", "worker-pod1"], f { $0.destinationPod = ["worker-pod1"] }),
            (["--from-identity", "19773"], f { $0.sourceIdentity = [19773] }),
            (["--to-identity", "5487"], f { $0.destinationIdentity = [5487] }),
            (["--from-port", "8080"], f { $0.sourcePort = ["8080"] }),
            (["--to-port", "5000"], f { $0.destinationPort = ["5000"] }),
            (["--protocol", "tcp"], f { $0.protocol = ["tcp"] }),
            (["--protocol", "udp"], f { $0.protocol = ["udp"] }),
            (["--protocol", "icmp"], f { $0.protocol = ["icmp"] }),
            (["--verdict", "dropped"], f { $0.verdict = [.dropped] }),
            (["--verdict", "forwarded"], f { $0.verdict = [.forwarded] }),
            (["--drop-reason", "133"], f { $0.dropReasonDesc = [.policyDenied] }),
            (["--node", "worker"], f { $0.nodeName = ["worker"] }),
            (["--tcp-flags", "SYN"], f {
                var flags = Flow_TCPFlags()
                flags.syn = true
                $0.tcpFlags = [flags]
            }),
        ]
    }()

    @Test("each CLI flow filter selects what its FlowFilter twin selects through the Hubble servers' path", arguments: 0..<twins.count)
    func twin(_ i: Int) throws {
        let (arguments, filter) = Self.twins[i]
        let recordings = ((try? FileManager.default.contentsOfDirectory(atPath: Self.samples)) ?? []).filter { $0.hasSuffix(".vxrec") }
        #expect(recordings.count >= 5)
        var selected = 0
        for name in recordings.sorted() {
            let path = Self.samples + "/" + name
            let cli = try Self.cli(path, arguments)
            let grpc = try Self.grpc(path, filter)
            #expect(cli == grpc, "\(name) \(arguments): CLI \(cli.count), gRPC \(grpc.count)")
            selected += cli.count
        }
        #expect(selected > 0, "\(arguments) selects something in the samples")
    }
}
