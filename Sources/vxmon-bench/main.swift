// vxmon-bench: throughput and memory of `vxmon replay` per output mode.
//
//   vxmon-bench FILE.vxrec [--vxmon PATH] [--runs N] [--stages] [--stats] [--journey] [--metrics]
//
// `--stats` times `vxmon stats FILE` instead (the counters and the top flows: `make bench` runs it on
// a million distinct flows, tools/gen_distinct_flows.py). `--journey` times `vxmon journey FILE -o none
// --summary` (journey building, one thread: `make bench` runs it on a million events of cross-node
// pings, tools/gen_journeys.py).
//
// For each mode it runs the real binary (`vxmon replay FILE <flags> > /dev/null`) N times and
// reports the best events/s and the peak RSS (wait4's ru_maxrss), so the figures are what a user
// gets. `--stages` also times decode and each renderer in-process over the records held in memory,
// which is where to look when a mode regresses. No timing is asserted: compare figures from one run.
import Glibc
import VxmonCore
import VxmonLive

struct Mode {
    let name: String
    let flags: [String]
    let target: Double
}

let modes = [
    Mode(name: "default", flags: [], target: 2_000_000),
    Mode(name: "-vv", flags: ["-vv"], target: 500_000),
    Mode(name: "json", flags: ["-o", "json"], target: 700_000),
    Mode(name: "yaml", flags: ["-o", "yaml"], target: 500_000),
    // A filter that keeps ~1% of the seed-1 file's events: filtering happens before rendering.
    Mode(name: "filter 1%", flags: ["--from-ip", "10.0.1.147", "--not", "--protocol", "icmp"], target: 5_000_000),
]

func fail(_ message: String) -> Never {
    EventPipeline.standardError("vxmon-bench: \(message)")
    exit(1)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

var args = Array(CommandLine.arguments.dropFirst())
var vxmonPath: String?
var runs = 3
var stages = false
var statsOnly = false
var journeyOnly = false
var metricsOnly = false
var file: String?
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--vxmon": vxmonPath = args.isEmpty ? nil : args.removeFirst()
    case "--runs": runs = Int(args.isEmpty ? "" : args.removeFirst()) ?? 3
    case "--stages": stages = true
    case "--stats": statsOnly = true
    case "--journey": journeyOnly = true
    case "--metrics": metricsOnly = true
    case "-h", "--help":
        print("usage: vxmon-bench FILE.vxrec [--vxmon PATH] [--runs N] [--stages] [--stats] [--journey] [--metrics]")
        exit(0)
    default: file = a
    }
}
guard let file else { fail("usage: vxmon-bench FILE.vxrec [--vxmon PATH] [--runs N] [--stages] [--stats] [--journey] [--metrics]") }

// The vxmon binary defaults to the one built next to this benchmark.
if vxmonPath == nil {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 {
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        vxmonPath = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/vxmon"
    }
}
guard let vxmon = vxmonPath, access(vxmon, X_OK) == 0 else { fail("vxmon binary not found (use --vxmon PATH)") }

/// Counts events (sample + lost records) in the recording once, with the library.
final class Counter: RecordConsumer {
    var samples = 0
    var bodies: [[UInt8]] = []
    /// Per kept body, the index of the node the recording says it came from (0 without node records).
    var nodes: [Int] = []
    var nodeNames: [String] = []
    var node = 0
    var keep = false
    func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        samples += 1
        if keep {
            bodies.append(body.withUnsafeBytes { Array($0) })
            nodes.append(node)
        }
    }
    func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) { samples += 1 }
    func interfaceName(ifindex: UInt32, name: String) {}
    func metadata(key: String, value: String) {
        guard key == "node" else { return }
        if let i = nodeNames.firstIndex(of: value) {
            node = i
        } else {
            nodeNames.append(value)
            node = nodeNames.count - 1
        }
    }
    func malformedRecord(index: Int, offset: Int, reason: String) {}
}

let fd = open(file, O_RDONLY)
guard fd >= 0 else { fail("cannot open \(file)") }
var counter = Counter()
counter.keep = stages || metricsOnly
do { try VxrecReader(fd: fd).run(&counter) } catch { fail("\(file): \(error)") }
close(fd)
let events = counter.samples

if metricsOnly {
    // What the agent's reader adds per sample with --metrics, in-process over the records held in
    // memory: decoding alone, counting with the sample memo, and counting with every sample decoded.
    let decoder = EventDecoder()
    var event = Event()
    let passes = max(runs, 1)
    func time(_ name: String, _ body: ([UInt8], Int) -> Void) {
        var best = Double.infinity
        for _ in 0..<passes {
            let start = now()
            for (i, record) in counter.bodies.enumerated() { body(record, counter.nodes[i]) }
            best = min(best, now() - start)
        }
        print("  \(name) \(Double(Int(best * 1e10 / Double(max(counter.bodies.count, 1)))) / 10) ns/event")
    }
    print("vxmon-bench: \(file): \(counter.bodies.count) samples, best of \(passes) passes")
    // VXMON_BENCH_STAGE=memo runs only the memo's stage (for callgrind).
    let only = getenv("VXMON_BENCH_STAGE").map { String(cString: $0) }
    if only == nil { time("decode           ") { r, _ in r.withUnsafeBytes { try? decoder.decode($0.bytes, into: &event) } } }
    // The loop alone (what the figures below include besides the work).
    var sink = 0
    time("loop             ") { r, _ in r.withUnsafeBytes { sink &+= $0.count } }
    if sink == 42 { print(sink) }
    let names = counter.nodeNames.isEmpty ? ["node"] : counter.nodeNames
    let memo = AgentMetrics(nodeNames: names)
    let fast = memo.fastPath
    // As the agent counts: the fast path, then what it left to the metrics object.
    func count(_ bytes: UnsafeRawBufferPointer, _ node: Int) {
        let left = fast.sample(node: node, cpu: 0, bytes: bytes)
        if left != .nothing { memo.sample(node: node, cpu: 0, bytes: bytes, left: left) }
    }
    time("metrics          ") { r, node in r.withUnsafeBytes { count($0, node) } }
    // As in the agent: each sample is also copied on through 16 MiB (a client's queue), which keeps
    // pushing the metrics' own lines out of the caches.
    let ringSize = 16 << 20
    let ring = UnsafeMutableRawPointer.allocate(byteCount: ringSize + 65536, alignment: 64)
    var at = 0
    time("copy             ") { r, _ in
        r.withUnsafeBytes { ring.advanced(by: at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        at = (at + r.count + 63) & ~63
        if at >= ringSize { at = 0 }
    }
    time("copy + metrics   ") { r, node in
        r.withUnsafeBytes {
            ring.advanced(by: at).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
            count($0, node)
        }
        at = (at + r.count + 63) & ~63
        if at >= ringSize { at = 0 }
    }
    print("  memo: \(memo.hubble.memoMisses) of \(counter.bodies.count * passes * 2) samples decoded")
    if only != nil { exit(0) }
    let plain = AgentMetrics(nodeNames: names, memo: false)
    time("metrics, no memo ") { r, node in r.withUnsafeBytes { plain.sample(node: node, cpu: 0, bytes: $0) } }
    // The memo must count exactly what decoding every sample counts (one pass of each, afresh).
    let once = AgentMetrics(nodeNames: names)
    let onceDecoded = AgentMetrics(nodeNames: names, memo: false)
    for (i, r) in counter.bodies.enumerated() {
        r.withUnsafeBytes {
            once.sample(node: counter.nodes[i], cpu: 0, bytes: $0)
            onceDecoded.sample(node: counter.nodes[i], cpu: 0, bytes: $0)
        }
    }
    once.publish()
    let a = OutputBuffer(capacity: 1 << 16)
    let b = OutputBuffer(capacity: 1 << 16)
    let w1 = MetricsWriter(out: a, format: .text)
    let w2 = MetricsWriter(out: b, format: .text)
    for t in once.hubble.tables { w1.family(t) }
    for t in onceDecoded.hubble.tables { w2.family(t) }
    print(a.string == b.string ? "  memo and decoding count alike" : "  MEMO DIFFERS:\n\(a.string)\n---\n\(b.string)")
    exit(0)
}

/// Runs `vxmon replay FILE flags` (or `vxmon stats FILE flags`) with stdout on /dev/null; returns
/// (seconds, peak RSS KiB).
func runReplay(_ flags: [String], command: String = "replay") -> (Double, Int) {
    let argv = [vxmon, command, file] + flags
    var cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    // `vxmon journey --summary` prints its table on stderr (the exit status still says if it failed).
    if command == "journey" { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
    defer { posix_spawn_file_actions_destroy(&actions) }
    var pid: pid_t = 0
    let start = now()
    guard posix_spawn(&pid, vxmon, &actions, nil, &cargs, environ) == 0 else { fail("cannot run \(vxmon)") }
    var status: Int32 = 0
    var usage = rusage()
    wait4(pid, &status, 0, &usage)
    let elapsed = now() - start
    if status != 0 { fail("\(argv.joined(separator: " ")) exited with status \(status)") }
    return (elapsed, usage.ru_maxrss)
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
func fmt(_ v: Double) -> String {
    let i = Int(v.rounded())
    var s = String(i)
    var out = ""
    while s.count > 3 {
        out = "," + s.suffix(3) + out
        s = String(s.dropLast(3))
    }
    return s + out
}

print("vxmon-bench: \(file): \(fmt(Double(events))) events, best of \(runs) runs per mode, output to /dev/null")
print("\(pad("mode", 10)) \(lpad("events/s", 12)) \(lpad("target", 12)) \(lpad("seconds", 8)) \(lpad("peak RSS", 10))")
// `vxmon stats` prints its tables on stdout (to /dev/null here, as the replays' output).
let chosen =
    journeyOnly
    ? [Mode(name: "journey", flags: ["-o", "none", "--summary"], target: 1_000_000)]
    : statsOnly ? [Mode(name: "stats", flags: [], target: 1_000_000)] : modes
for mode in chosen {
    var best = Double.infinity
    var rss = 0
    for _ in 0..<max(runs, 1) {
        let (t, r) = runReplay(mode.flags, command: journeyOnly ? "journey" : statsOnly ? "stats" : "replay")
        best = min(best, t)
        rss = max(rss, r)
    }
    let rate = Double(events) / best
    print(
        "\(pad(mode.name, 10)) \(lpad(fmt(rate), 12)) \(lpad(fmt(mode.target), 12)) \(lpad(String(Double(Int(best * 1000)) / 1000), 8)) \(lpad(String(rss / 1024) + " MB", 10))"
    )
}

if stages {
    // In-process stage timings over the records held in memory (no I/O).
    print("\nin-process ns/event (records in memory, output discarded):")
    let decoder = EventDecoder()
    var event = Event()
    func time(_ name: String, _ body: ([UInt8]) -> Void) {
        let start = now()
        for record in counter.bodies { body(record) }
        let ns = (now() - start) * 1e9 / Double(max(counter.bodies.count, 1))
        print("  \(pad(name, 10)) \(lpad(String(Int(ns)), 6))")
    }
    time("decode") { r in r.withUnsafeBytes { try? decoder.decode($0.bytes, into: &event) } }
    for (name, format, verbosity) in [
        ("default", OutputFormat.text, Verbosity.info), ("-vv", .text, .verbose), ("json", .json, .info),
        ("yaml", .yaml, .info),
    ] {
        let pipeline = EventPipeline(format: format, verbosity: verbosity, diagnostics: { _ in })
        time(name) { r in
            r.withUnsafeBytes { pipeline.sample($0.bytes, cpu: 0, timeNanoseconds: 0, index: 0, offset: 0) }
            if pipeline.out.count > 1 << 20 { pipeline.out.removeAll() }
        }
    }
}
