import Foundation
import Synchronization
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// Helpers for the privileged lab tests: the gate (skip where the machine cannot run them, fail under
// VXMON_REQUIRE_PRIVILEGED=1), unique lab names, a live session collecting JSON records, tcpdump
// captures and a pcap reader for the VXLAN assertions.

enum LabGate {
    /// Why this machine cannot run the lab tests, or nil if it can.
    static let missing: String? = {
        if !Preflight.isRoot { return "not root" }
        if !Preflight.hasBPFFS { return "no bpffs at /sys/fs/bpf" }
        if !Preflight.hasBTF { return "no kernel BTF" }
        if (try? Preflight.locateObject()) == nil { return "bpf/.output/vxmon.bpf.o not built (make -C bpf)" }
        for tool in ["ip", "tcpdump", "ping"] where !Shell.hasTool(tool) { return "\(tool) not installed" }
        return nil
    }()

    /// Set by CI (.ci/run): a missing capability is then a failure, not a skip.
    static let required = ProcessInfo.processInfo.environment["VXMON_REQUIRE_PRIVILEGED"] == "1"

    /// The suite runs where it can, and also where it must (to fail there).
    static let enabled = missing == nil || required

    /// First line of every privileged test: fails the test when the machine cannot run it.
    static func check() throws {
        if let missing {
            throw VxmonError(
                "privileged lab test cannot run here: \(missing) (VXMON_REQUIRE_PRIVILEGED=1 makes that a failure)")
        }
    }
}

/// Unique lab names per test run, so parallel runs and leftovers never collide.
enum LabNames {
    private static let counter = Mutex(0)
    static func make(_ tag: String) -> String {
        let n = counter.withLock { value -> Int in
            value += 1
            return value
        }
        return "vxt\(getpid() % 100_000)\(tag)\(n)"
    }
}

/// Builds a lab and always removes it (also when the test fails).
func withLab<T>(_ tag: String, pods: Int = 2, _ body: (Lab, LabTopology) throws -> T) throws -> T {
    try LabGate.check()
    let lab = try Lab(name: LabNames.make(tag))
    defer { _ = try? lab.down() }
    let topology = try lab.up(podsPerNode: pods, objectPath: try Preflight.locateObject())
    return try body(lab, topology)
}

/// A live session rendering JSON into memory on a background thread.
final class JSONCollector {
    let pipeline: EventPipeline
    let session: LiveSession
    private let thread: BackgroundThread

    init(_ topology: LabTopology, buffer: BufferKind = LiveOptions().buffer) throws {
        pipeline = EventPipeline(format: .json, diagnostics: { _ in })
        var options = LiveOptions()
        options.buffer = buffer
        let session = try LiveSession(
            topology: topology, options: options,
            sink: PipelineSink(pipeline: pipeline, nodeNames: topology.nodes.map(\.name)))
        session.announceInterfaces()
        self.session = session
        thread = try BackgroundThread { _ = try session.run() }
        // Let the session turn events on before traffic starts.
        usleep(200_000)
    }

    /// Stops the session and returns every record as a dictionary.
    func finish() throws -> [[String: Any]] {
        usleep(300_000)
        session.requestStop()
        try thread.join()
        session.close()
        return pipeline.out.string.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

extension [String: Any] {
    var subtype: String? { self["subtype"] as? String }
    var node: String? { self["node_name"] as? String }
    var type: String? { self["type"] as? String }
    var sourceIdentity: Int? { (self["source"] as? [String: Any])?["identity"] as? Int }
    var destinationIdentity: Int? { (self["destination"] as? [String: Any])?["identity"] as? Int }
    var dropReason: Int? { self["drop_reason"] as? Int }
    var summary: String { self["summary"] as? String ?? "" }
    var interfaceName: String? { (self["interface"] as? [String: Any])?["name"] as? String }
    var cpu: Int? { self["cpu"] as? Int }
}

/// Runs `arguments` in `namespace` (ip netns exec) and returns its exit status.
@discardableResult
func inNamespace(_ namespace: String, _ arguments: [String]) throws -> CommandResult {
    try Shell.run(["ip", "netns", "exec", namespace] + arguments, check: false)
}

/// tcpdump writing a pcap inside a namespace; `stop()` ends it (SIGINT flushes the file). Immediate
/// mode: without it packets wait in the capture ring for a block timeout, and a SIGINT then ends
/// tcpdump with packets "received by filter" but never written.
final class Capture {
    let path: String
    private let process: ChildProcess

    init(namespace: String, interface: String, filter: [String]) throws {
        path = NSTemporaryDirectory() + "vxmon-test-\(UUID().uuidString).pcap"
        let log = path + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        process = try Shell.spawn(
            ["ip", "netns", "exec", namespace, "tcpdump", "-i", interface, "--immediate-mode", "-U", "-nn", "-w", path]
                + filter,
            quiet: true, errorFile: log)
        // tcpdump says "listening on <interface>" once its filter is attached.
        for _ in 0..<250 {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("listening on") { break }
            usleep(20_000)
        }
        usleep(50_000)
    }

    func stop() -> [[UInt8]] {
        usleep(200_000)
        process.stop(SIGINT)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return Pcap.frames(FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? [])
    }
}

/// Classic pcap files (what `tcpdump -w` writes): Ethernet frames.
enum Pcap {
    static func frames(_ file: [UInt8]) -> [[UInt8]] {
        guard file.count >= 24 else { return [] }
        let magic = le32(file, 0)
        let swapped = magic == 0xd4c3_b2a1 || magic == 0x4d3c_b2a1
        func u32(_ o: Int) -> Int { Int(swapped ? le32(file, o).byteSwapped : le32(file, o)) }
        var frames: [[UInt8]] = []
        var o = 24
        while o + 16 <= file.count {
            let captured = u32(o + 8)
            guard o + 16 + captured <= file.count else { break }
            frames.append(Array(file[(o + 16)..<(o + 16 + captured)]))
            o += 16 + captured
        }
        return frames
    }

    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
}

/// What the VXLAN assertions need from a frame: outer UDP to 8472, the VNI, the inner Ethernet and
/// IPv4 addresses and the ICMP type.
struct VXLANFrame {
    var vni: UInt32
    var innerSourceMAC: String
    var innerDestinationMAC: String
    var innerSource: String
    var innerDestination: String
    var icmpType: UInt8?

    init?(_ f: [UInt8]) {
        // Ethernet (14) + IPv4 (ihl) + UDP (8) + VXLAN (8) + Ethernet (14) + IPv4 (20).
        guard f.count >= 14 + 20, f[12] == 0x08, f[13] == 0x00 else { return nil }
        let ihl = Int(f[14] & 0x0f) * 4
        let udp = 14 + ihl
        guard f[23] == 17, f.count >= udp + 8 + 8 + 14 + 20 else { return nil }
        guard Int(f[udp + 2]) << 8 | Int(f[udp + 3]) == 8472 else { return nil }
        let vx = udp + 8
        vni = UInt32(f[vx + 4]) << 16 | UInt32(f[vx + 5]) << 8 | UInt32(f[vx + 6])
        let inner = vx + 8
        innerDestinationMAC = formatMAC(f[inner..<(inner + 6)])
        innerSourceMAC = formatMAC(f[(inner + 6)..<(inner + 12)])
        let ip = inner + 14
        innerSource = f[(ip + 12)..<(ip + 16)].map(String.init).joined(separator: ".")
        innerDestination = f[(ip + 16)..<(ip + 20)].map(String.init).joined(separator: ".")
        let innerIHL = Int(f[ip] & 0x0f) * 4
        icmpType = f[ip + 9] == 1 && f.count > ip + innerIHL ? f[ip + innerIHL] : nil
    }
}

/// (source, destination, ICMP type) of a plain Ethernet/IPv4/ICMP frame.
func icmpFrame(_ f: [UInt8]) -> (String, String, UInt8)? {
    guard f.count >= 14 + 20 + 1, f[12] == 0x08, f[13] == 0x00, f[23] == 1 else { return nil }
    let ihl = Int(f[14] & 0x0f) * 4
    guard f.count > 14 + ihl else { return nil }
    return (
        f[26..<30].map(String.init).joined(separator: "."), f[30..<34].map(String.init).joined(separator: "."),
        f[14 + ihl]
    )
}

/// A TCP echo on port 8080 and a UDP echo on port 5000 in `pod`'s namespace, one exchange each: the
/// traffic of the live filter tests. Returns once it listens; the caller terminates it.
func startEchoServer(in pod: LabTopology.Pod, dir: String) throws -> Process {
    let server = """
        import socket
        t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 8080)); t.listen(1)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5000))
        open("\(dir)/ready", "w").close()
        c, _ = t.accept(); c.sendall(c.recv(64).upper()); c.close()
        m, peer = u.recvfrom(64); u.sendto(m.upper(), peer)
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["ip", "netns", "exec", pod.namespace, "python3", "-c", server]
    try process.run()
    _ = LabAgentTests.waitFor(5) { FileManager.default.fileExists(atPath: dir + "/ready") }
    return process
}

/// The client side of `startEchoServer`'s exchanges, from `pod` to the server at `ip`.
func echoExchange(from pod: LabTopology.Pod, to ip: String) throws -> CommandResult {
    let client = """
        import socket
        s = socket.create_connection(("\(ip)", 8080), timeout=2); s.sendall(b"hello\\n"); s.recv(64); s.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b"ping\\n", ("\(ip)", 5000)); u.recvfrom(64)
        """
    return try inNamespace(pod.namespace, ["python3", "-c", client])
}
