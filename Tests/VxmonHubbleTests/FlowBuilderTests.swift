import Foundation
import SwiftProtobuf
import Testing
import VxmonCore
import VxmonHubble

// The Hubble servers build their flows with FlowBuilder (no JSON in between); `-o jsonpb` writes them
// with HubbleJSONRenderer. Both read one HubbleFlow, and this checks they say the same thing: every
// rendered line, parsed by swift-protobuf's strict JSON parser, equals the built message, for every
// vector, sample and bulk_2k event, in both releases' readings. (The JSON itself is checked against
// Hubble 1.13's own parser and Google's protobuf library in VxmonCLITests.)

/// Renders and builds every event it is given, and counts where the two differ.
final class BuildAndRender: EventSink {
    let renderer: HubbleJSONRenderer
    let builder = FlowBuilder()
    let release: CiliumRelease
    let pods: PodDirectory
    let names: InterfaceNames
    var compared = 0
    var differences: [String] = []
    private let out = OutputBuffer(capacity: 1 << 12)

    init(pipeline: EventPipeline, release: CiliumRelease) {
        pods = pipeline.pods
        names = pipeline.names
        self.release = release
        renderer = HubbleJSONRenderer(names: names, pods: pods, release: release)
    }

    func event(_ event: borrowing Event, record: RawSpan) {
        out.removeAll()
        renderer.render(event, record: record, into: out)
        let built = HubbleFlow(event, record: record, release: release, pods: pods, names: names).map { builder.response($0) }
        guard out.count > 0 else {
            if built != nil { differences.append("built a flow the renderer left out") }
            return
        }
        compared += 1
        do {
            let parsed = try Observer_GetFlowsResponse(jsonUTF8Bytes: Array(out.bytes.dropLast()))
            if parsed != built {
                differences.append("\(out.string)  built: \((try? built?.jsonString()) ?? "nothing")")
            }
        } catch {
            differences.append("does not parse (\(error)): \(out.string)")
        }
    }

    func lost(_ lost: LostSamples) {}
}

struct FlowBuilderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples").path

    static var recordings: [String] {
        let vectors = fixtures + "/vectors"
        return (((try? FileManager.default.contentsOfDirectory(atPath: vectors)) ?? []).filter { $0.hasSuffix(".vxrec") }
            .map { vectors + "/" + $0 })
            + (((try? FileManager.default.contentsOfDirectory(atPath: samples)) ?? []).filter { $0.hasSuffix(".vxrec") }
                .map { samples + "/" + $0 })
    }

    @Test("the built message equals the rendered line, on every vector, sample and bulk_2k event", arguments: [CiliumRelease.v1_13, .latest])
    func builtEqualsRendered(release: CiliumRelease) throws {
        var total = 0
        #expect(Self.recordings.count >= 40)
        for path in Self.recordings {
            let pipeline = EventPipeline(format: .none, release: release, diagnostics: { _ in })
            let check = BuildAndRender(pipeline: pipeline, release: release)
            pipeline.add(check)
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            var consumer = pipeline
            let parser = VxrecParser()
            data.withUnsafeBytes { parser.feed($0) }
            try? parser.parse(into: &consumer)
            #expect(check.differences.isEmpty, "\(path): \(check.differences.prefix(3))")
            total += check.compared
        }
        #expect(total > 2100, "flows compared: \(total)")
    }
}
