import Foundation
import Testing
import VxmonCore
import VxmonLive

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the CLI-level tests: fixture paths (from #filePath), a .vxrec builder written from the
// spec, rendering through the library, and running processes.

enum CLIFixtures {
    /// The package root (`Tests/VxmonCLITests/CLISupport.swift` -> two levels up).
    static let packageRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }()
    static var fixtures: String { packageRoot + "/Tests/Fixtures" }
    static var vectors: String { fixtures + "/vectors" }

    static func bytes(_ path: String) -> [UInt8] {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
    }
    static func text(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
    static var vectorNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: vectors)) ?? [])
            .filter { $0.hasSuffix(".vxrec") }.map { String($0.dropLast(6)) }.sorted()
    }
}

struct Record {
    var kind: UInt16
    var cpu: UInt32 = 0
    var time: UInt64 = 0
    var body: [UInt8]
}

func leBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) }
}

/// A `.vxrec` v1 file, straight from the spec.
func vxrec(_ records: [Record]) -> [UInt8] {
    var b = Array("VXMONREC".utf8) + leBytes(UInt16(1)) + leBytes(UInt16(16)) + leBytes(UInt32(0))
    for r in records {
        b += leBytes(r.kind) + leBytes(UInt16(0)) + leBytes(r.cpu) + leBytes(r.time) + leBytes(UInt32(r.body.count)) + leBytes(UInt32(0))
        b += r.body
        while b.count % 8 != 0 { b.append(0) }
    }
    return b
}

/// The record bodies of a `.vxrec` file, straight from the spec.
func records(_ b: [UInt8]) -> [Record] {
    func le16(_ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    func le32(_ o: Int) -> UInt32 { UInt32(le16(o)) | UInt32(le16(o + 2)) << 16 }
    var o = 16
    var out: [Record] = []
    while o + 24 <= b.count {
        let len = Int(le32(o + 16))
        guard o + 24 + len <= b.count else { break }
        out.append(Record(kind: le16(o), cpu: le32(o + 4), time: 0, body: Array(b[(o + 24)..<(o + 24 + len)])))
        o += 24 + ((len + 7) & ~7)
    }
    return out
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var hi: UInt8?
    for c in s.utf8 {
        guard let v = UInt8(String(UnicodeScalar(c)), radix: 16) else { continue }
        if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
    }
    return out
}

final class Lines: @unchecked Sendable { var all: [String] = [] }

/// Renders a recording through VxrecReader + EventPipeline into a string.
func render(
    _ file: [UInt8], _ format: OutputFormat, release: CiliumRelease = .v1_13, verbosity: Verbosity = .info, hex: Bool = false
) throws -> (String, [String]) {
    let diags = Lines()
    let pipeline = EventPipeline(
        format: format, verbosity: verbosity, hex: hex, release: release, diagnostics: { diags.all.append($0) })
    let path = NSTemporaryDirectory() + "/vxmon-cli-\(UUID().uuidString).vxrec"
    try Data(file).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let fd = open(path, O_RDONLY)
    try #require(fd >= 0)
    defer { close(fd) }
    var consumer = pipeline
    try VxrecReader(fd: fd).run(&consumer)
    return (pipeline.out.string, diags.all)
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable` with `arguments`, feeding `stdin`, and collects everything. Standard streams go
/// through temporary files, so no pipe can fill up and no threads are needed. `stdoutFile`: standard
/// output goes to that file (created anew, kept) instead, and `stdout` is what it holds.
func run(
    _ executable: String, _ arguments: [String], stdin: [UInt8]? = nil, stdoutFile: String? = nil,
    directory: String? = nil, environment: [String: String]? = nil
) throws -> ProcessResult {
    let base = NSTemporaryDirectory() + "/vxmon-run-\(UUID().uuidString)"
    let paths = (in: base + ".in", out: stdoutFile ?? base + ".out", err: base + ".err")
    defer {
        for path in [paths.in, paths.err] + (stdoutFile == nil ? [paths.out] : []) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
    try Data(stdin ?? []).write(to: URL(fileURLWithPath: paths.in))
    _ = FileManager.default.createFile(atPath: paths.out, contents: nil)
    _ = FileManager.default.createFile(atPath: paths.err, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    if let environment { p.environment = environment }
    p.standardInput = stdin == nil ? FileHandle.nullDevice : FileHandle(forReadingAtPath: paths.in)
    p.standardOutput = FileHandle(forWritingAtPath: paths.out)
    p.standardError = FileHandle(forWritingAtPath: paths.err)
    try p.run()
    p.waitUntilExit()
    return ProcessResult(
        status: p.terminationStatus, stdout: CLIFixtures.text(paths.out) ?? "", stderr: CLIFixtures.text(paths.err) ?? "")
}

/// Finds an executable on PATH.
func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}
