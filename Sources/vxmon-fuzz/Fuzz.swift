// vxmon-fuzz: fuzz targets for everything that reads bytes from outside.
//
//   make fuzz                      # each target for FUZZ_SECONDS (default 60), corpora in fuzz/corpus/
//   VXMON_FUZZ_TARGET=decoder .build-fuzz/release/vxmon-fuzz fuzz/corpus/decoder -max_total_time=3600
//   .build/debug/vxmon-fuzz decoder FILE...   # a normal build runs inputs once (regression inputs)
//
// Targets (VXMON_FUZZ_TARGET in the libFuzzer build, the first argument otherwise):
//   decoder  one monitor sample through the decoder and every renderer (text at every verbosity and
//            --hex, JSON, YAML, pcapng), in 1.13 and latest mode, with and without a filter; and
//            through the metrics with their sample memo against without it (the sample and a copy
//            with one byte changed, three times each): any difference in the counts is a finding
//   vxrec    a .vxrec recording, fed to the parser in two pieces, rendered as text and JSON
//   agent    a Cilium agent monitor-socket stream (gob), fed in two pieces, rendered as text
//   filter   NUL-separated command-line words through the filter parser, then a match
//   journey  a .vxrec recording through the journey builder (a few open journeys, a short timeout)
//            and every journey output: text, JSON, YAML, the summary and the drawing
//
// Built with `-sanitize=fuzzer,address -D FUZZING` (`make fuzz-build`), libFuzzer provides main.
#if canImport(Glibc)
import Glibc
#endif
import VxmonCore

enum Target: String, CaseIterable {
    case decoder, vxrec, agent, filter, journey
}

/// Renders one input with a target. Any trap or memory error is a finding.
func fuzzOne(_ target: Target, _ data: UnsafeRawBufferPointer) {
    switch target {
    case .decoder: fuzzDecoder(data)
    case .vxrec: fuzzVxrec(data)
    case .agent: fuzzAgent(data)
    case .filter: fuzzFilter(data)
    case .journey: fuzzJourney(data)
    }
}

let modes: [(OutputFormat, Verbosity, Bool)] = [
    (.text, .info, false), (.text, .debug, false), (.text, .verbose, false), (.text, .verbose, true),
    (.json, .info, false), (.yaml, .info, false), (.jsonpb, .info, false),
]

/// Takes the pcapng bytes and drops them.
final class DiscardOutput: ByteOutput {
    func write(_ bytes: UnsafeRawBufferPointer) -> SinkStatus { .ok }
}

/// A line on stderr.
func standardError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// One pipeline per (release, mode), made once: building them per input would dominate the run.
nonisolated(unsafe) let decoderPipelines: [EventPipeline] = {
    var pipelines: [EventPipeline] = []
    for release in [CiliumRelease.v1_13, .latest] {
        for (format, verbosity, hex) in modes {
            let pipeline = EventPipeline(
                format: format, verbosity: verbosity, hex: hex, release: release,
                decorations: TextDecorations(
                    timestamps: TimeFormatter(format: .rfc3339Nano, utcOffset: 0), nodeLabels: true, color: true),
                diagnostics: { _ in })
            pipeline.node = "fuzz\u{202e}node"
            pipeline.interfaceName(ifindex: 3, name: "lxc\u{1b}[31m")
            pipeline.add(PcapngSink(output: DiscardOutput(), names: pipeline.names, release: release))
            pipeline.counters = FlowCounters()
            pipelines.append(pipeline)
        }
        // And through a filter that reads every part of the flow.
        let filter = try! FilterParser.parse([
            "--ip", "10.0.0.0/8", "--not", "--port", "53", "--tcp-flags", "SYN,!ACK", "--interface", "lxc",
            "--vni", "5", "--protocol", "arp", "--drop-reason", "133",
        ])
        pipelines.append(EventPipeline(format: .json, release: release, filter: filter, diagnostics: { _ in }))
    }
    return pipelines
}()

/// Hubble's metric families with the sample memo and without (every sample decoded), per release.
nonisolated(unsafe) let memoMetrics: [(memo: HubbleMetrics, plain: HubbleMetrics)] = [CiliumRelease.v1_13, .latest].map {
    (HubbleMetrics(nodeNames: ["n"], release: $0), HubbleMetrics(nodeNames: ["n"], release: $0, memo: false))
}
nonisolated(unsafe) var memoInputs = 0

/// Every series of `m`'s families, in order: labels and value.
func memoSnapshot(_ m: HubbleMetrics) -> [([String], UInt64)] {
    var out: [([String], UInt64)] = []
    for t in m.tables { t.forEachSeries { labels, values in out.append(([t.name] + labels, values[0])) } }
    return out
}

func fuzzMemo(_ data: UnsafeRawBufferPointer) {
    // The copy: up to three bytes changed, where and how the input's last bytes say (any bits).
    var mutated = Array(data)
    let n = mutated.count
    if n > 0 {
        for j in 1...min(3, n) {
            let seed = Int(data[n - j])
            let at = (seed &* 131 &+ j &* 7919 &+ n / 2) % n
            mutated[at] ^= UInt8(truncatingIfNeeded: seed &* 37 &+ j) | 1
        }
    }
    for (memo, plain) in memoMetrics {
        for round in 0..<6 {
            if round < 3 {
                let a = memo.count(sample: data.bytes, node: 0)
                let b = plain.count(sample: data.bytes, node: 0)
                if a != b { fatalError("sample memo: counted \(a), decoding \(b)") }
            } else {
                mutated.withUnsafeBytes {
                    let a = memo.count(sample: $0.bytes, node: 0)
                    let b = plain.count(sample: $0.bytes, node: 0)
                    if a != b { fatalError("sample memo: counted \(a), decoding \(b)") }
                }
            }
        }
    }
    memoInputs &+= 1
    if memoInputs % 64 == 0 {
        for (memo, plain) in memoMetrics {
            memo.publish()
            let a = memoSnapshot(memo)
            let b = memoSnapshot(plain)
            if a.count != b.count || zip(a, b).contains(where: { $0.0 != $1.0 || $0.1 != $1.1 }) {
                fatalError("sample memo: the counts differ from decoding every sample")
            }
        }
    }
}

func fuzzDecoder(_ data: UnsafeRawBufferPointer) {
    fuzzMemo(data)
    for pipeline in decoderPipelines {
        pipeline.out.removeAll()
        pipeline.sample(data.bytes, cpu: 1, timeNanoseconds: 1_764_608_719_000_000_000, index: 1, offset: 0)
        if let counters = pipeline.counters, counters.events % 1024 == 0 {
            _ = counters.table(pipeline.stats)
            counters.reset()
        }
        pipeline.flush()
    }
}

/// Feeds `data` to `feed` in two pieces, split where its first byte says.
func twoPieces(_ data: UnsafeRawBufferPointer, _ feed: (UnsafeRawBufferPointer) -> Void) {
    let split = data.isEmpty ? 0 : min(Int(data[0]) * 7, data.count)
    feed(UnsafeRawBufferPointer(rebasing: data[0..<split]))
    feed(UnsafeRawBufferPointer(rebasing: data[split...]))
}

/// Drives a byte parser with `data` in two pieces into a pipeline; errors end the stream, as they do
/// for a reader.
func drive(_ parser: some ByteStreamParser, _ data: UnsafeRawBufferPointer, _ format: OutputFormat) {
    var pipeline = EventPipeline(format: format, verbosity: .verbose, diagnostics: { _ in })
    var failed = false
    twoPieces(data) { piece in
        guard !failed else { return }
        parser.feed(piece)
        do { try parser.parse(into: &pipeline) } catch { failed = true }
    }
    if !failed { _ = try? parser.finish() }
}

func fuzzVxrec(_ data: UnsafeRawBufferPointer) {
    for format in [OutputFormat.text, .json] { drive(VxrecParser(capacity: 64), data, format) }
}

func fuzzJourney(_ data: UnsafeRawBufferPointer) {
    var pipeline = EventPipeline(format: .none, release: data.first.map { $0 & 1 == 0 } ?? true ? .v1_13 : .latest, diagnostics: { _ in })
    var options = JourneyBuilder.Options()
    options.maxOpen = 8
    options.maxHops = 6
    options.timeout = 1_000_000
    let filter = try! FilterParser.parse(["--not", "--node", "worker"])
    let builder = JourneyBuilder(options: options, filter: filter, pods: pipeline.pods, names: pipeline.names)
    builder.add(JourneyTextOutput(output: DiscardOutput(), flushEachRecord: false))
    builder.add(JourneyStructuredOutput(syntax: .json, output: DiscardOutput(), flushEachRecord: false))
    builder.add(JourneyStructuredOutput(syntax: .yaml, output: DiscardOutput(), flushEachRecord: true))
    let stats = JourneyStats()
    builder.add(stats)
    let drawing = JourneyDrawing(limit: 4)
    builder.add(drawing)
    pipeline.add(builder)
    let parser = VxrecParser(capacity: 64)
    var failed = false
    twoPieces(data) { piece in
        guard !failed else { return }
        parser.feed(piece)
        do { try parser.parse(into: &pipeline) } catch { failed = true }
    }
    if !failed { _ = try? parser.finish() }
    builder.finish()
    pipeline.flush()
    _ = stats.table(builder)
    let out = OutputBuffer(capacity: 256)
    stats.render(builder, syntax: .json, into: out)
    _ = drawing.svg(builder)
    _ = drawing.html(builder)
}

func fuzzAgent(_ data: UnsafeRawBufferPointer) {
    for carry in [false, true] {
        let parser = AgentStreamParser()
        parser.carryOverFields = carry
        drive(parser, data, .text)
    }
}

func fuzzFilter(_ data: UnsafeRawBufferPointer) {
    let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    guard var filter = try? FilterParser.parse(words) else { return }
    // Both readings the engine has: the monitor's (the CLI) and Hubble's (the servers' queries).
    for reading in [FlowReading.monitor, .hubble(.v1_13), .hubble(.latest)] {
        filter.reading = reading
        // A tunnel packet event to match against (a trace v1 of a VXLAN frame), with a pod known.
        let pipeline = EventPipeline(format: .text, filter: filter, diagnostics: { _ in })
        pipeline.learn(PodInfo(name: "p", ip: .v4(.init(rawValue: 0x0a00_020a)), identity: 1, node: "n"))
        pipeline.sample(sampleEvent.span.bytes, cpu: 0, timeNanoseconds: 0, index: 1, offset: 0)
    }
}

/// A trace v1 (to-overlay) of an Ethernet/IPv4/UDP/VXLAN/Ethernet/IPv4/ICMP frame.
let sampleEvent: [UInt8] = {
    var inner: [UInt8] = [0x0a, 0x58, 0x0a, 0, 1, 0x0a, 0x0a, 0x58, 0x0a, 0, 2, 0x0a, 0x08, 0x00]
    inner += [0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 2, 10, 10, 0, 1, 10]
    inner += [8, 0, 0, 0, 0, 1, 0, 1]
    var outer: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
    let udpLength = 8 + 8 + inner.count
    outer += [0x45, 0, 0, UInt8(20 + udpLength), 0, 0, 0, 0, 64, 17, 0, 0, 172, 18, 0, 4, 172, 18, 0, 3]
    outer += [0xbe, 0xef, 0x21, 0x18, 0, UInt8(udpLength), 0, 0]
    outer += [0x08, 0, 0, 0, 0, 0x4d, 0x3d, 0]
    let packet = outer + inner
    var header: [UInt8] = [4, 4, 0, 0, 0, 0, 0, 0]
    header += [UInt8(packet.count), 0, 0, 0, UInt8(packet.count), 0, 1, 0]
    header += [0x3d, 0x4d, 0, 0, 0x6f, 0x15, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]
    header += [UInt8](repeating: 0, count: 16)
    return header + packet
}()

#if FUZZING
/// libFuzzer's driver (from the runtime `-sanitize=fuzzer` links): it runs the fuzzing loop.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

nonisolated(unsafe) var selectedTarget = Target.decoder

/// The fuzzing build: libFuzzer's driver with the target from VXMON_FUZZ_TARGET.
@main
struct FuzzMain {
    static func main() {
        let name = getenv("VXMON_FUZZ_TARGET").map { String(cString: $0) } ?? "decoder"
        guard let target = Target(rawValue: name) else {
            standardError("vxmon-fuzz: VXMON_FUZZ_TARGET must be one of decoder, vxrec, agent, filter, journey")
            exit(64)
        }
        selectedTarget = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
            fuzzOne(selectedTarget, UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : count))
            return 0
        })
    }
}
#else
/// Without libFuzzer: run each input file once through a target (regression inputs, seed checks).
@main
struct FuzzReplay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let name = args.first, let target = Target(rawValue: name) else {
            standardError("usage: vxmon-fuzz decoder|vxrec|agent|filter|journey FILE...")
            exit(64)
        }
        var ran = 0
        for path in args.dropFirst() {
            guard let file = fopen(path, "rb") else {
                standardError("vxmon-fuzz: cannot open an input")
                exit(1)
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            fclose(file)
            bytes.withUnsafeBytes { fuzzOne(target, $0) }
            ran += 1
        }
        print("vxmon-fuzz \(name): \(ran) inputs ran without a fault")
    }
}
#endif
