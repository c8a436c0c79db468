import Glibc
import VxmonCore

/// `vxmon-hubble --bench-ingest FILE`: what the servers' ingestion costs per event, on one thread:
/// the recording is read into memory once, then decoded, mapped (`HubbleFlow`) and stored in a ring,
/// `rounds` times; the best round is reported (`make bench` prints it). Then what a reader pays: the
/// whole ring read once, every flow built into its message (`FlowBuilder`).
public enum IngestBench {
    public static func run(path: String, rounds: Int, capacity: Int) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw VxmonIngestBenchError("cannot open \(EventPipeline.sanitized(path))") }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += chunk[..<n]
        }
        close(fd)
        var best = Double.infinity
        var flows: UInt64 = 0
        var events = 0
        var lastRing: FlowRing? = nil
        for _ in 0..<rounds {
            let ring = FlowRing(capacity: capacity)
            let pipeline = EventPipeline(format: .none, release: .latest, diagnostics: { _ in })
            // Recordings of one node or none: every flow goes to the one ring.
            let ingest = FlowIngest(rings: [:], pods: pipeline.pods, names: pipeline.names, fallback: ring)
            pipeline.add(ingest)
            var consumer = pipeline
            let parser = VxrecParser()
            var start = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
            data.withUnsafeBytes { parser.feed($0) }
            try parser.parse(into: &consumer)
            var end = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end)
            let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
            best = min(best, seconds)
            flows = ingest.flows
            events = pipeline.stats.events
            lastRing = ring
        }
        let rate = Double(flows) / best
        print(
            "hubble ingest (decode, map, store; one thread CPU time, best of \(rounds)): "
                + "\(events) events, \(flows) flows in \(String(format: "%.3f", best)) s = \(Int(rate)) flows/s")
        if let filled = lastRing { reportRead(filled) }
    }

    /// The ring read once, every flow built into its message, on one thread.
    static func reportRead(_ ring: FlowRing) {
        var t0 = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0)
        let read = ring.read(from: 0, limit: ring.capacity).entries.count
        var t1 = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1)
        let seconds = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
        print(
            "hubble read (the ring's \(read) flows built into messages for a reader): "
                + "\(Int(Double(read) / max(seconds, 1e-9))) flows/s")
    }
}

struct VxmonIngestBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
