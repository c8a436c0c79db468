import Foundation
import Testing
import VxmonCore
import VxmonLive
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// Shared helpers for the VxmonCore tests: fixture paths (from #filePath, no bundle resources),
// rendering through the library exactly as `vxmon replay` does, and the transformations that turn
// Cilium's expected output into vxmon's (the documented differences of Tests/Fixtures/vectors/README.md).

enum Fixtures {
    /// `Tests/Fixtures`, found from this file's path so a fresh clone needs nothing else.
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    static var vectors: String { root + "/vectors" }
    static var goldens: String { root + "/vxmon-goldens" }

    static func bytes(_ path: String) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { return [] }
        return [UInt8](d)
    }

    static func text(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: d, as: UTF8.self)
    }

    /// Every `NAME` with a `NAME.vxrec` in the vectors directory, sorted, bulk_2k excluded.
    static let vectorNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: vectors)) ?? []
        return files.filter { $0.hasSuffix(".vxrec") && $0 != "bulk_2k.vxrec" }
            .map { String($0.dropLast(".vxrec".count)) }
            .sorted()
    }()
}

/// One way of rendering: a text verbosity/flag combination or a structured format.
struct RenderMode: Sendable, CustomStringConvertible, Hashable {
    var name: String
    var format: OutputFormat
    var verbosity: Verbosity = .info
    var hex = false
    var numeric = false

    var description: String { name }

    static let textDefault = RenderMode(name: "default", format: .text)
    static let textV = RenderMode(name: "v", format: .text, verbosity: .debug)
    static let textVV = RenderMode(name: "vv", format: .text, verbosity: .verbose)
    static let textVVHex = RenderMode(name: "vvhex", format: .text, verbosity: .verbose, hex: true)
    static let textN = RenderMode(name: "n", format: .text, numeric: true)
    static let json = RenderMode(name: "json", format: .json)
    static let yaml = RenderMode(name: "yaml", format: .yaml)

    /// The five text modes the vectors have expected files for.
    static let textModes: [RenderMode] = [.textDefault, .textV, .textVV, .textVVHex, .textN]
    /// Every renderer configuration (text info/debug/verbose/hex/numeric, JSON, YAML).
    static let all: [RenderMode] = textModes + [.json, .yaml]
}

/// Collects diagnostics lines (the pipeline's stderr).
final class DiagnosticSink: @unchecked Sendable {
    var lines: [String] = []
}

struct RenderResult {
    var output: String
    var diagnostics: [String]
    var error: RecordingError?
    var stats: PipelineStats
}

func makePipeline(_ mode: RenderMode, release: CiliumRelease = .v1_13, sink: DiagnosticSink) -> EventPipeline {
    EventPipeline(
        format: mode.format, verbosity: mode.verbosity, hex: mode.hex, numeric: mode.numeric, release: release,
        diagnostics: { sink.lines.append($0) })
}

/// Calls `body` with a read-only descriptor positioned at the start of a private temporary file that
/// holds `bytes` (VxrecReader reads from a file descriptor).
func withTemporaryFile<R>(_ bytes: [UInt8], _ body: (Int32) throws -> R) throws -> R {
    var template = Array((NSTemporaryDirectory() + "/vxmon-test-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw RecordingError("mkstemp failed") }
    let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer {
        close(fd)
        unlink(path)
    }
    var written = 0
    try bytes.withUnsafeBytes { p in
        while written < p.count {
            let r = write(fd, p.baseAddress! + written, p.count - written)
            if r <= 0 { throw RecordingError("write failed") }
            written += r
        }
    }
    lseek(fd, 0, SEEK_SET)
    return try body(fd)
}

/// Renders a whole `.vxrec` recording (given as bytes) through VxrecReader + EventPipeline.
func renderRecording(_ bytes: [UInt8], _ mode: RenderMode, release: CiliumRelease = .v1_13) -> RenderResult {
    let sink = DiagnosticSink()
    let pipeline = makePipeline(mode, release: release, sink: sink)
    var failure: RecordingError?
    do {
        try withTemporaryFile(bytes) { fd in
            let reader = VxrecReader(fd: fd, chunkSize: 4096)
            var consumer = pipeline
            try reader.run(&consumer)
        }
    } catch let e as RecordingError {
        failure = e
    } catch {
        failure = RecordingError("\(error)")
    }
    return RenderResult(output: pipeline.out.string, diagnostics: sink.lines, error: failure, stats: pipeline.stats)
}

func renderVector(_ name: String, _ mode: RenderMode, release: CiliumRelease = .v1_13) -> RenderResult {
    renderRecording(Fixtures.bytes("\(Fixtures.vectors)/\(name).vxrec"), mode, release: release)
}

/// Renders one raw sample (notify header + packet) directly, without a recording around it.
func renderSample(_ body: [UInt8], _ mode: RenderMode, cpu: Int = 0, release: CiliumRelease = .v1_13) -> RenderResult {
    let sink = DiagnosticSink()
    let pipeline = makePipeline(mode, release: release, sink: sink)
    pipeline.sample(body.span.bytes, cpu: cpu, timeNanoseconds: 0, index: 1, offset: -1)
    return RenderResult(output: pipeline.out.string, diagnostics: sink.lines, error: nil, stats: pipeline.stats)
}

// MARK: - A reader of .vxrec written for the tests (independent of VxrecReader)

struct TestRecord {
    var kind: UInt16
    var cpu: UInt32
    var time: UInt64
    var body: [UInt8]
}

func le16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
func le32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(le16(b, o)) | UInt32(le16(b, o + 2)) << 16 }
func le64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(le32(b, o)) | UInt64(le32(b, o + 4)) << 32 }

/// Splits a well-formed `.vxrec` file into its records, straight from the spec (16-byte header,
/// 24-byte record headers, bodies padded to 8 from the start of the file).
func parseVxrec(_ b: [UInt8]) -> [TestRecord] {
    guard b.count >= 16, Array(b[0..<8]) == Array("VXMONREC".utf8) else { return [] }
    var o = Int(le16(b, 10))
    o = (o + 7) & ~7
    var out: [TestRecord] = []
    while o + 24 <= b.count {
        let len = Int(le32(b, o + 16))
        guard o + 24 + len <= b.count else { break }
        out.append(
            TestRecord(kind: le16(b, o), cpu: le32(b, o + 4), time: le64(b, o + 8), body: Array(b[(o + 24)..<(o + 24 + len)])))
        o += 24 + ((len + 7) & ~7)
    }
    return out
}

/// Builds a `.vxrec` file from records, straight from the spec.
func buildVxrec(_ records: [TestRecord], version: UInt16 = 1, magic: String = "VXMONREC") -> [UInt8] {
    var b = Array(magic.utf8)
    func put16(_ v: UInt16) { b += [UInt8(v & 0xff), UInt8(v >> 8)] }
    func put32(_ v: UInt32) { put16(UInt16(v & 0xffff)); put16(UInt16(v >> 16)) }
    func put64(_ v: UInt64) { put32(UInt32(v & 0xffff_ffff)); put32(UInt32(v >> 32)) }
    put16(version)
    put16(16)
    put32(0)
    for r in records {
        put16(r.kind)
        put16(0)
        put32(r.cpu)
        put64(r.time)
        put32(UInt32(r.body.count))
        put32(0)
        b += r.body
        while b.count % 8 != 0 { b.append(0) }
    }
    return b
}

// MARK: - Expected-output transformations (the documented differences)

let separatorLine = String(repeating: "-", count: 78)

/// Difference (1): in `-vv` output Cilium prints the `CPU NN: MARK ...` header of trace and drop events
/// after the packet lines; vxmon prints it right after the separator. Moves it, block by block.
func moveHeadersAfterSeparator(_ text: String) -> String {
    if text.isEmpty { return text }
    var lines = text.components(separatedBy: "\n")
    let trailingNewline = lines.last == ""
    if trailingNewline { lines.removeLast() }
    var result: [String] = []
    var i = 0
    while i < lines.count {
        if lines[i] != separatorLine {
            result.append(lines[i])
            i += 1
            continue
        }
        // A block runs from this separator to the next separator (or the end).
        var j = i + 1
        while j < lines.count && lines[j] != separatorLine { j += 1 }
        var block = Array(lines[(i + 1)..<j])
        if let h = block.firstIndex(where: { $0.hasPrefix("CPU ") && $0.contains(": MARK ") }), h != 0 {
            let header = block.remove(at: h)
            block.insert(header, at: 0)
        }
        result.append(lines[i])
        result += block
        i = j
    }
    return result.joined(separator: "\n") + (trailingNewline ? "\n" : "")
}

func lines(_ s: String) -> [String] {
    var l = s.components(separatedBy: "\n")
    if l.last == "" { l.removeLast() }
    return l
}

/// Parses a hex string ("0a1b...") into bytes.
func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var hi: UInt8?
    for c in s.utf8 {
        let v: UInt8
        switch c {
        case 0x30...0x39: v = c - 0x30
        case 0x61...0x66: v = c - 0x61 + 10
        case 0x41...0x46: v = c - 0x41 + 10
        default: continue
        }
        if let h = hi {
            out.append(h << 4 | v)
            hi = nil
        } else {
            hi = v
        }
    }
    return out
}

/// A Cilium trace notification, version 1 (48-byte header, little-endian), around `packet`.
func traceV1(
    _ packet: [UInt8], observationPoint: UInt8 = 4, source: UInt16 = 0, hash: UInt32 = 0, lenOrig: UInt32? = nil,
    lenCap: UInt16? = nil, srcLabel: UInt32 = 0, dstLabel: UInt32 = 0, dstID: UInt16 = 0, reason: UInt8 = 0,
    flags: UInt8 = 0, ifindex: UInt32 = 0, origIP: [UInt8] = Array(repeating: 0, count: 16)
) -> [UInt8] {
    var b: [UInt8] = [4, observationPoint]
    func put16(_ v: UInt16) { b += [UInt8(v & 0xff), UInt8(v >> 8)] }
    func put32(_ v: UInt32) { put16(UInt16(v & 0xffff)); put16(UInt16(v >> 16)) }
    put16(source)
    put32(hash)
    put32(lenOrig ?? UInt32(packet.count))
    put16(lenCap ?? UInt16(truncatingIfNeeded: packet.count))
    put16(1)
    put32(srcLabel)
    put32(dstLabel)
    put16(dstID)
    b.append(reason)
    b.append(flags)
    put32(ifindex)
    b += origIP
    return b + packet
}

// MARK: - External programs (oracles such as tshark)

struct ProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable` with `arguments` and collects its exit status and output. The streams go through
/// temporary files, so no pipe can fill up and no threads are needed.
func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessOutput {
    let base = NSTemporaryDirectory() + "/vxmon-run-\(UUID().uuidString)"
    let paths = (out: base + ".out", err: base + ".err")
    defer { for path in [paths.out, paths.err] { try? FileManager.default.removeItem(atPath: path) } }
    _ = FileManager.default.createFile(atPath: paths.out, contents: nil)
    _ = FileManager.default.createFile(atPath: paths.err, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle(forWritingAtPath: paths.out)
    p.standardError = FileHandle(forWritingAtPath: paths.err)
    try p.run()
    p.waitUntilExit()
    return ProcessOutput(
        status: p.terminationStatus, stdout: Fixtures.text(paths.out) ?? "", stderr: Fixtures.text(paths.err) ?? "")
}

/// Finds an executable on PATH.
func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}
