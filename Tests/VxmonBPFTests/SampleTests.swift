import Foundation
import Testing
import VxmonCore
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// Replays every recording in samples/ and compares each rendering byte for byte with the committed
// file (samples/README.md says how each was recorded). No root needed. VXMON_RECORD_GOLDENS=1
// rewrites the renderings and still fails, so re-recording is never silent.

enum Samples {
    static let directory: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples").path
    }()

    static let names: [String] = {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".vxrec") }.map { String($0.dropLast(".vxrec".count)) }.sorted()
    }()

    /// (file suffix, format, verbosity) of each committed rendering.
    static let renderings: [(String, OutputFormat, Verbosity)] = [
        ("txt", .text, .info), ("vv.txt", .text, .verbose), ("json", .json, .info), ("yaml", .yaml, .info),
    ]
}

final class Diagnostics: @unchecked Sendable { var lines: [String] = [] }

@Suite("samples/ replay reproduces the committed renderings")
struct SampleTests {
    @Test("samples exist and every one has a README line")
    func samplesDocumented() throws {
        #expect(!Samples.names.isEmpty, "no .vxrec in \(Samples.directory)")
        let readme = try String(contentsOfFile: Samples.directory + "/README.md", encoding: .utf8)
        for name in Samples.names {
            #expect(readme.contains("| `\(name)` |"), "samples/README.md has no line for \(name)")
        }
    }

    @Test("replay renders each sample exactly as committed", arguments: Samples.names)
    func replay(_ name: String) throws {
        for (suffix, format, verbosity) in Samples.renderings {
            let diagnostics = Diagnostics()
            // As `vxmon replay` prints a recording of several nodes: each text record names its node.
            let pipeline = EventPipeline(
                format: format, verbosity: verbosity, decorations: TextDecorations(nodeLabels: true),
                diagnostics: { diagnostics.lines.append($0) })
            let fd = open("\(Samples.directory)/\(name).vxrec", O_RDONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            var consumer = pipeline
            try VxrecReader(fd: fd).run(&consumer)
            #expect(diagnostics.lines.isEmpty, "\(name): \(diagnostics.lines)")
            #expect(pipeline.stats.events > 0)
            let rendered = pipeline.out.string
            let path = "\(Samples.directory)/\(name).\(suffix)"
            if ProcessInfo.processInfo.environment["VXMON_RECORD_GOLDENS"] == "1" {
                try rendered.write(toFile: path, atomically: true, encoding: .utf8)
                Issue.record("recorded new golden \(path)")
                continue
            }
            let expected = try #require(
                try? String(contentsOfFile: path, encoding: .utf8),
                "missing golden \(path) (VXMON_RECORD_GOLDENS=1 writes it)")
            #expect(rendered == expected, "\(name).\(suffix) differs from the replay")
        }
    }
}
