import Testing
import VxmonLive

@testable import VxmonBPF

#if canImport(Glibc)
    import Glibc
#endif

// The parts of the lab and the live path that need no privileges: the deterministic topology, the
// stale-namespace matcher, the time-ordering of staged perf samples, the ring header and the wall-clock
// offset of the datapath's clock.

@Suite("lab topology and live-path helpers")
struct TopologyTests {
    @Test("the topology is the seed's cluster, deterministic, with unique identities and endpoint IDs")
    func topology() throws {
        let t = LabTopology.make(lab: "vxmon", podsPerNode: 3)
        #expect(t == LabTopology.make(lab: "vxmon", podsPerNode: 3))
        #expect(t.nodes.map(\.name) == ["control-plane", "worker", "worker2"])
        #expect(t.nodes.map(\.ip) == ["172.18.0.2", "172.18.0.3", "172.18.0.4"])
        #expect(t.nodes.map(\.podCIDR) == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"])
        #expect(t.underlayNamespace == "vxmon-underlay")
        #expect(t.pods.count == 9)
        #expect(Set(t.pods.map(\.identity)).count == 9)
        #expect(Set(t.pods.map(\.endpointID)).count == 9)
        #expect(Set(t.namespaces).count == t.namespaces.count)
        for pod in t.pods {
            let node = try #require(t.node(named: pod.node))
            #expect((256..<(1 << 24)).contains(pod.identity))
            #expect((1...4095).contains(pod.endpointID))
            #expect(pod.lxc.hasPrefix("lxc") && pod.lxc.count == 11 && pod.lxc.count <= 15)
            let hex = pod.lxc.dropFirst(3).allSatisfy { $0.isHexDigit }
            #expect(hex)
            #expect(pod.ip.hasPrefix(node.podCIDR.replacing("0/24", with: "")))
            #expect(pod.ip != node.gateway)
            #expect(parseMAC(pod.mac) != nil && parseMAC(pod.lxcMAC) != nil && pod.mac != pod.lxcMAC)
            #expect(pod.namespace == "vxmon-\(pod.name)")
        }
        // Pods keep their identity when the pod count changes.
        let two = LabTopology.make(lab: "other", podsPerNode: 2)
        for pod in two.pods {
            #expect(t.pod(pod.name)?.identity == pod.identity)
        }
        let decoded = try LabTopology.decode(t.encoded())
        #expect(decoded == t)
    }

    @Test("lab names become namespace prefixes")
    func labNames() {
        #expect((try? LabTopology.validate(labName: "vxmon")) != nil)
        #expect((try? LabTopology.validate(labName: "vxt123ping4")) != nil)
        for bad in ["", "Vxmon", "1lab", "a b", "lab/x", String(repeating: "a", count: 33)] {
            #expect((try? LabTopology.validate(labName: bad)) == nil, "\(bad)")
        }
    }

    @Test("leftover namespaces are matched by name without touching labs that share a prefix")
    func ownNamespaces() {
        for ns in ["vxmon-underlay", "vxmon-worker", "vxmon-worker2", "vxmon-control-plane", "vxmon-worker2-pod12"] {
            #expect(LabTopology.isOwnNamespace(ns, lab: "vxmon"), "\(ns)")
        }
        for ns in [
            "vxmon-test-underlay", "vxmon-worker-worker-pod1", "vxmon-worker3", "vxmon-worker-pod", "vxmon-worker-podx",
            "vxmonx-worker", "other-worker",
        ] {
            #expect(!LabTopology.isOwnNamespace(ns, lab: "vxmon"), "\(ns)")
        }
    }

    @Test("staged perf samples come out in timestamp order across nodes and CPUs; lost records stay in place")
    func stagingOrder() {
        let staging = EventStaging()
        func add(_ node: Int, _ cpu: Int, _ time: UInt64) {
            var marker = UInt8(time)
            withUnsafeBytes(of: &marker) { staging.add(node: node, cpu: cpu, time: time, bytes: $0) }
        }
        // Node 1 (read first) has later events than node 0 on another CPU.
        add(1, 0, 30)
        add(1, 0, 50)
        staging.addLost(node: 1, cpu: 0, count: 7)
        add(0, 1, 10)
        add(0, 1, 40)
        add(0, 0, 20)
        var order: [String] = []
        staging.drain { node, cpu, time, bytes, lost in
            order.append(bytes.map { "\(node)/\(cpu)@\($0[0]):\(time)" } ?? "lost \(lost) \(node)/\(cpu):\(time)")
        }
        // Each entry keeps its own time; a lost record takes the time of the sample before it.
        #expect(order == ["0/1@10:10", "0/0@20:20", "1/0@30:30", "0/1@40:40", "1/0@50:50", "lost 7 1/0:50"])
        #expect(staging.isEmpty)
    }

    @Test("the ifindex a trace or drop refers to is found at the decoder's offsets")
    func interfaceIndex() {
        var trace = [UInt8](repeating: 0, count: 48)
        trace[0] = 4
        trace[28] = 7
        var drop = [UInt8](repeating: 0, count: 36)
        drop[0] = 1
        drop[32] = 9
        #expect(trace.withUnsafeBytes { LiveSession.interfaceIndex($0) } == 7)
        #expect(drop.withUnsafeBytes { LiveSession.interfaceIndex($0) } == 9)
        #expect(Array(trace.prefix(20)).withUnsafeBytes { LiveSession.interfaceIndex($0) } == nil)
        trace[28] = 0
        #expect(trace.withUnsafeBytes { LiveSession.interfaceIndex($0) } == nil)
    }

    @Test("a ring record's header gives node, CPU and the kernel's time; the event after it is passed on")
    func ringHeader() throws {
        final class Delegate: SourceDelegate {
            var samples: [(node: Int, cpu: Int, time: UInt64, bytes: [UInt8])] = []
            var unattributed: [String] = []
            func sourceSample(node: Int, cpu: Int, kernelTime: UInt64, bytes: UnsafeRawBufferPointer) {
                samples.append((node, cpu, kernelTime, Array(bytes)))
            }
            func sourceLost(node: Int, cpu: Int, count: UInt64) {}
            func sourceUnattributed(cpu: Int, reason: String) { unattributed.append(reason) }
        }
        // Laid out by hand as bpf/include/vxmon/lab.h documents it: u16 node, u16 cpu, u32 reserved,
        // u64 boot_ns, little-endian, then a trace v1 (48 bytes) with len_cap 4 in a 64-byte slot.
        var record = [UInt8](repeating: 0xee, count: 16 + 48 + 64)
        record.replaceSubrange(0..<8, with: [2, 0, 1, 0, 0, 0, 0, 0])
        record.replaceSubrange(8..<16, with: [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        record[16] = 4
        record.replaceSubrange((16 + 12)..<(16 + 15), with: [4, 0, 1])
        let delegate = Delegate()
        // Lab node 2 is this session's node 0; lab nodes 0 and 1 are not read.
        let context = RingBufferSource.Context(delegate: delegate, sessionNodes: [nil, nil, 0])
        for r in [record, Array(record.prefix(15))] {
            _ = r.withUnsafeBytes { context.record($0.baseAddress!, $0.count) }
        }
        var other = record
        other[0] = 1
        _ = other.withUnsafeBytes { context.record($0.baseAddress!, $0.count) }
        let sample = try #require(delegate.samples.first)
        #expect(delegate.samples.count == 1)
        #expect(sample.node == 0)
        #expect(sample.cpu == 1)
        #expect(sample.time == 0x0102_0304_0506_0708)
        #expect(sample.bytes == Array(record[16..<(16 + 48 + 4)]))
        #expect(delegate.unattributed.count == 2)
    }

    @Test("the wall-clock offset of CLOCK_BOOTTIME agrees with CLOCK_REALTIME read around it")
    func bootClock() {
        let clock = BootClock()
        // A vDSO clock_gettime takes tens of ns; even a preempted bracket stays far below 10 ms.
        #expect(clock.bracket < 10_000_000)
        for _ in 0..<3 {
            let before = BootClock.read(CLOCK_REALTIME)
            let boot = BootClock.read(CLOCK_BOOTTIME)
            let after = BootClock.read(CLOCK_REALTIME)
            let wall = clock.wallClock(boot)
            #expect(
                wall + clock.bracket / 2 + 1 >= before && wall <= after + clock.bracket / 2 + 1,
                "\(before) <= \(wall) <= \(after) +- \(clock.bracket / 2)")
        }
    }

    @Test("a ring record reaches the sink cut at len_cap: the stale rest of its fixed-size slot does not")
    func ringRecordTrim() {
        // A trace (48-byte header) with len_cap 10 in a 48 + 64-byte slot, a drop (36) with len_cap 100
        // in a 36 + 128-byte slot, then records the datapath does not write and short ones.
        var trace = [UInt8](repeating: 0xee, count: 48 + 64)
        trace[0] = 4
        trace[12] = 10
        trace[13] = 0
        trace[14] = 1  // version 1, as the datapath writes
        var drop = [UInt8](repeating: 0xee, count: 36 + 128)
        drop[0] = 1
        drop[12] = 100
        drop[13] = 0
        drop[14] = 1
        var lying = trace
        lying[12] = 200  // len_cap beyond the slot: never more than the record holds
        let debug: [UInt8] = [2] + [UInt8](repeating: 0, count: 30)
        let short: [UInt8] = [4, 0, 0]
        func used(_ b: [UInt8]) -> Int { b.withUnsafeBytes { RingBufferSource.Context.used($0) } }
        #expect(used(trace) == 58)
        #expect(used(drop) == 136)
        #expect(used(lying) == trace.count)
        #expect(used(debug) == debug.count)
        #expect(used(short) == short.count)
        #expect(used([]) == 0)
    }
}
