import ArgumentParser
import CVxmonABI
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

extension LabCommand {
    struct Soak: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the lab under a UDP flood with the monitor rendering -vv to a file, and check the accounting.",
            discussion: """
                Floods UDP from a pod on worker2 to a pod on worker for --seconds while an in-process \
                monitor reads the lab's ring and renders every event at -vv to a file. The datapath counts \
                every event it writes (a per-CPU counter, on only for the soak) and every ring record it \
                could not reserve. At the end it checks that events written = events received, that records \
                not reserved = samples reported lost, and that the peak RSS stays under --max-rss-mb. \
                Exit 1 if any check fails. Brings the lab up (and down again) if it is not up.
                """)

        @OptionGroup var labOptions: LabOptions

        @Option(parsing: .unconditional, help: "Seconds of flood (1 to 86400).")
        var seconds: Double = 60

        @Option(parsing: .unconditional, help: "Peak RSS limit in MB (the check).")
        var maxRssMb = 64

        @Option(help: "The BPF object, if the lab has to be brought up.")
        var bpfObject: String?

        func validate() throws {
            if !(seconds.isFinite && seconds >= 1 && seconds <= 86400) {
                throw ValidationError("--seconds: expected 1 to 86400")
            }
            if !(1...65536).contains(maxRssMb) { throw ValidationError("--max-rss-mb: expected 1 to 65536") }
        }

        func run() throws {
            try Preflight.requirePrivileged("lab soak")
            let flooded = try FloodLab(labOptions, bpfObject: bpfObject, port: 9, purpose: "the soak")
            defer { flooded.close() }
            let (lab, topology, source, destination) = (flooded.lab, flooded.topology, flooded.source, flooded.destination)

            let maps = try topology.nodes.map { try NodeMaps(paths: lab.paths, node: $0.name) }
            func sum(_ index: Int32) -> UInt64 { maps.reduce(0) { $0 +| $1.statCounters(index).reduce(0, +|) } }
            for node in maps { try node.setCountEmitted(true) }
            defer { for node in maps { try? node.setCountEmitted(false) } }
            let emittedBefore = sum(VXMON_STAT_EMITTED)
            let failedBefore = sum(VXMON_STAT_RING_FAIL)

            // On disk (/run is memory), appended to, and cut back to nothing whenever it passes 256 MB,
            // so a long soak neither fills the disk nor stops writing.
            let outputPath = "/var/tmp/vxmon-soak-\(lab.name)-\(getpid()).txt"
            let out = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
            if out < 0 { throw CLIError("cannot create the soak output: \(String(cString: strerror(errno)))") }
            defer {
                close(out)
                unlink(outputPath)
            }
            let pipeline = EventPipeline(format: .text, verbosity: .verbose, output: FileOutput(fd: out), diagnostics: { _ in })
            var options = LiveOptions()
            options.buffer = .ring
            let session = try LiveSession(
                topology: topology, options: options,
                sink: PipelineSink(pipeline: pipeline, nodeNames: topology.nodes.map(\.name)))
            session.announceInterfaces()
            let thread = try BackgroundThread { _ = try session.run() }
            guard let exe = Preflight.executablePath else { throw CLIError("cannot find the vxmon executable") }
            let flood = try Shell.spawn(
                [exe, "_flood", "--netns", source.namespace, "--to", destination.ip, "--port", "9", "--seconds", "\(seconds)"],
                quiet: true)
            let start = monotonicSeconds()
            var written = 0
            func fileSize() -> Int {
                var st = stat()
                return fstat(out, &st) == 0 ? Int(st.st_size) : 0
            }
            while monotonicSeconds() - start < seconds + 0.5 && !flood.hasExited && !stopRequested.load(ordering: .relaxed) {
                sleepSeconds(0.2)
                let size = fileSize()
                if size > 256 << 20 {
                    written += size
                    _ = ftruncate(out, 0)
                }
            }
            flood.stop()
            sleepSeconds(0.3)
            session.requestStop()
            try thread.join()  // turns events off and drains the ring before it returns
            session.close()
            pipeline.flush()

            let stats = session.stats
            let emitted = sum(VXMON_STAT_EMITTED) &- emittedBefore
            let notReserved = sum(VXMON_STAT_RING_FAIL) &- failedBefore
            let peakMB = Double(peakResidentKilobytes()) / 1024
            written += fileSize()
            let received = UInt64(stats.samples)
            let accounted = emitted == received && notReserved == stats.lost
            let rssOK = peakMB < Double(maxRssMb)
            print(
                "vxmon lab soak: \(Int(seconds)) s flood \(source.name) -> \(destination.name), monitor -vv to a file "
                    + "(\(written) bytes): datapath wrote \(emitted) events and could not reserve \(notReserved); "
                    + "received \(received), reported lost \(stats.lost); peak RSS \(String(format1: peakMB)) MB")
            print(
                "accounting (written = received, not reserved = lost): \(accounted ? "exact" : "MISMATCH"); "
                    + "peak RSS under \(maxRssMb) MB: \(rssOK ? "yes" : "NO")")
            if !accounted || !rssOK { throw ExitCode.failure }
        }
    }
}

/// This process's peak resident set, in KiB: VmHWM of /proc/self/status, the high-water mark of its
/// own address space. (getrusage's ru_maxrss survives execve: a soak started by a large process, such
/// as the test runner, would report the parent's peak.)
func peakResidentKilobytes() -> Int {
    guard let text = try? FileSystem.read("/proc/self/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
}
