import CVxmonABI
import Testing
import VxmonCore
import VxmonWire

// The ABI guard (Cilium's alignchecker for free): Swift imports the real C header of
// bpf/include/vxmon/events.h, so MemoryLayout of the imported structs is what clang lays out; the Swift
// decoder's offset table (EventLayout) must agree with it field by field.

@Suite("Event ABI: C header vs EventLayout")
struct EventABITests {
    // The size pins below exist to force this test to be updated together with the struct: a field
    // added to a C struct changes its size, fails here, and makes someone extend the offset checks.

    @Test("vxmon_notify_common")
    func notifyCommon() {
        #expect(MemoryLayout<vxmon_notify_common>.size == 8)  // pin: update this test with the struct
        #expect(MemoryLayout<vxmon_notify_common>.offset(of: \.type) == EventLayout.Common.type)
        #expect(MemoryLayout<vxmon_notify_common>.offset(of: \.subtype) == EventLayout.Common.subtype)
        #expect(MemoryLayout<vxmon_notify_common>.offset(of: \.source) == EventLayout.Common.source)
        #expect(MemoryLayout<vxmon_notify_common>.offset(of: \.hash) == EventLayout.Common.hash)
    }

    @Test("vxmon_trace_notify (v1) and v0")
    func trace() {
        typealias T = vxmon_trace_notify
        #expect(MemoryLayout<T>.size == 48)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.len_orig) == EventLayout.Capture.lengthOriginal)
        #expect(MemoryLayout<T>.offset(of: \.len_cap) == EventLayout.Capture.lengthCaptured)
        #expect(MemoryLayout<T>.offset(of: \.version) == EventLayout.Capture.version)
        #expect(MemoryLayout<T>.offset(of: \.src_label) == EventLayout.Trace.sourceIdentity)
        #expect(MemoryLayout<T>.offset(of: \.dst_label) == EventLayout.Trace.destinationIdentity)
        #expect(MemoryLayout<T>.offset(of: \.dst_id) == EventLayout.Trace.destinationID)
        #expect(MemoryLayout<T>.offset(of: \.reason) == EventLayout.Trace.reason)
        #expect(MemoryLayout<T>.offset(of: \.flags) == EventLayout.Trace.flags)
        #expect(MemoryLayout<T>.offset(of: \.ifindex) == EventLayout.Trace.ifindex)
        #expect(MemoryLayout<T>.offset(of: \.orig_ip) == EventLayout.Trace.originalIP)
        #expect(EventLayout.Trace.headerLength(version: 1) == MemoryLayout<T>.size)

        typealias T0 = vxmon_trace_notify_v0
        #expect(MemoryLayout<T0>.size == 32)  // pin: update this test with the struct
        #expect(MemoryLayout<T0>.offset(of: \.src_label) == EventLayout.Trace.sourceIdentity)
        #expect(MemoryLayout<T0>.offset(of: \.dst_label) == EventLayout.Trace.destinationIdentity)
        #expect(MemoryLayout<T0>.offset(of: \.dst_id) == EventLayout.Trace.destinationID)
        #expect(MemoryLayout<T0>.offset(of: \.reason) == EventLayout.Trace.reason)
        #expect(MemoryLayout<T0>.offset(of: \.flags) == EventLayout.Trace.flags)
        #expect(MemoryLayout<T0>.offset(of: \.ifindex) == EventLayout.Trace.ifindex)
        #expect(EventLayout.Trace.headerLength(version: 0) == MemoryLayout<T0>.size)
    }

    @Test("vxmon_drop_notify (v1)")
    func drop() {
        typealias T = vxmon_drop_notify
        #expect(MemoryLayout<T>.size == 36)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.len_orig) == EventLayout.Capture.lengthOriginal)
        #expect(MemoryLayout<T>.offset(of: \.len_cap) == EventLayout.Capture.lengthCaptured)
        #expect(MemoryLayout<T>.offset(of: \.version) == EventLayout.Capture.version)
        #expect(MemoryLayout<T>.offset(of: \.src_label) == EventLayout.Drop.sourceIdentity)
        #expect(MemoryLayout<T>.offset(of: \.dst_label) == EventLayout.Drop.destinationIdentity)
        #expect(MemoryLayout<T>.offset(of: \.dst_id) == EventLayout.Drop.destinationID)
        #expect(MemoryLayout<T>.offset(of: \.line) == EventLayout.Drop.line)
        #expect(MemoryLayout<T>.offset(of: \.file) == EventLayout.Drop.file)
        #expect(MemoryLayout<T>.offset(of: \.ext_error) == EventLayout.Drop.extError)
        #expect(MemoryLayout<T>.offset(of: \.ifindex) == EventLayout.Drop.ifindex)
        #expect(EventLayout.Drop.headerLength(version: 1) == MemoryLayout<T>.size)
    }

    @Test("vxmon_debug_msg")
    func debug() {
        typealias T = vxmon_debug_msg
        #expect(MemoryLayout<T>.size == 20)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.arg1) == EventLayout.Debug.arg1)
        #expect(MemoryLayout<T>.offset(of: \.arg2) == EventLayout.Debug.arg2)
        #expect(MemoryLayout<T>.offset(of: \.arg3) == EventLayout.Debug.arg3)
        #expect(MemoryLayout<T>.size == EventLayout.Debug.length)
    }

    @Test("vxmon_debug_capture_msg")
    func debugCapture() {
        typealias T = vxmon_debug_capture_msg
        #expect(MemoryLayout<T>.size == 24)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.len_orig) == EventLayout.Capture.lengthOriginal)
        #expect(MemoryLayout<T>.offset(of: \.len_cap) == EventLayout.Capture.lengthCaptured)
        #expect(MemoryLayout<T>.offset(of: \.version) == EventLayout.Capture.version)
        #expect(MemoryLayout<T>.offset(of: \.arg1) == EventLayout.DebugCapture.arg1)
        #expect(MemoryLayout<T>.offset(of: \.arg2) == EventLayout.DebugCapture.arg2)
        #expect(MemoryLayout<T>.size == EventLayout.DebugCapture.headerLength)
    }

    @Test("vxmon_policy_verdict_notify (1.13 layout)")
    func policyVerdict() {
        typealias T = vxmon_policy_verdict_notify
        #expect(MemoryLayout<T>.size == 32)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.remote_label) == EventLayout.PolicyVerdict.remoteIdentity)
        #expect(MemoryLayout<T>.offset(of: \.verdict) == EventLayout.PolicyVerdict.verdict)
        #expect(MemoryLayout<T>.offset(of: \.dst_port) == EventLayout.PolicyVerdict.destinationPort)
        #expect(MemoryLayout<T>.offset(of: \.proto) == EventLayout.PolicyVerdict.proto)
        #expect(MemoryLayout<T>.offset(of: \.flags) == EventLayout.PolicyVerdict.flags)
        // 1.14+ puts auth_type in the first byte of pad1.
        #expect(MemoryLayout<T>.offset(of: \.pad1) == EventLayout.PolicyVerdict.authType)
        #expect(MemoryLayout<T>.size == EventLayout.PolicyVerdict.headerLength(.v1_13))
    }

    @Test("vxmon_trace_sock_notify (1.13, packed)")
    func traceSock() {
        typealias T = vxmon_trace_sock_notify
        typealias L = EventLayout.TraceSock.V113
        #expect(MemoryLayout<T>.size == 38)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.xlate_point) == L.xlatePoint)
        #expect(MemoryLayout<T>.offset(of: \.dst_ip) == L.destinationIP)
        #expect(MemoryLayout<T>.offset(of: \.dst_port) == L.destinationPort)
        #expect(MemoryLayout<T>.offset(of: \.sock_cookie) == L.socketCookie)
        #expect(MemoryLayout<T>.offset(of: \.cgroup_id) == L.cgroupID)
        #expect(MemoryLayout<T>.offset(of: \.l4_proto) == L.l4Proto)
        #expect(MemoryLayout<T>.offset(of: \.flags) == L.flags)
        #expect(MemoryLayout<T>.size == L.length)
    }

    @Test("vxmon_recorder_capture_msg")
    func recorder() {
        typealias T = vxmon_recorder_capture_msg
        #expect(MemoryLayout<T>.size == 24)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.rule_id) == EventLayout.Recorder.ruleID)
        #expect(MemoryLayout<T>.offset(of: \.boot_ns) == EventLayout.Recorder.bootNanoseconds)
        #expect(MemoryLayout<T>.offset(of: \.caplen) == EventLayout.Recorder.captureLength)
        #expect(MemoryLayout<T>.offset(of: \.len) == EventLayout.Recorder.length)
        #expect(MemoryLayout<T>.size == EventLayout.Recorder.headerLength)
    }

    @Test("vxmon_ring_header (lab.h): node, CPU, time, and the record after it stays 8-byte aligned")
    func ringHeader() {
        // The ring reader loads the imported struct itself (no offset table of its own), so these pins
        // are what a change of the header must come through; VXMON_ABI_VERSION goes up with it.
        typealias T = vxmon_ring_header
        #expect(MemoryLayout<T>.size == 16)  // pin: update this test with the struct
        #expect(MemoryLayout<T>.offset(of: \.node) == 0)
        #expect(MemoryLayout<T>.offset(of: \.cpu) == 2)
        #expect(MemoryLayout<T>.offset(of: \.reserved) == 4)
        #expect(MemoryLayout<T>.offset(of: \.boot_ns) == 8)
        #expect(MemoryLayout<T>.size % 8 == 0)
        #expect(VXMON_ABI_VERSION == 5)  // pin: the header changed in ABI 4; ABI 5 added VXMON_STAT_EMITTED
    }

    @Test("message type constants")
    func messageTypes() {
        #expect(Int32(MessageType.drop.rawValue) == VXMON_NOTIFY_DROP)
        #expect(Int32(MessageType.debug.rawValue) == VXMON_NOTIFY_DBG_MSG)
        #expect(Int32(MessageType.capture.rawValue) == VXMON_NOTIFY_DBG_CAPTURE)
        #expect(Int32(MessageType.trace.rawValue) == VXMON_NOTIFY_TRACE)
        #expect(Int32(MessageType.policyVerdict.rawValue) == VXMON_NOTIFY_POLICY_VERDICT)
        #expect(Int32(MessageType.recorder.rawValue) == VXMON_NOTIFY_CAPTURE)
        #expect(Int32(MessageType.traceSock.rawValue) == VXMON_NOTIFY_TRACE_SOCK)
    }

    @Test("observation point and trace flag constants")
    func observationPoints() {
        let points: [(ObservationPoint, Int32)] = [
            (.toEndpoint, VXMON_TRACE_TO_LXC), (.toProxy, VXMON_TRACE_TO_PROXY), (.toHost, VXMON_TRACE_TO_HOST),
            (.toStack, VXMON_TRACE_TO_STACK), (.toOverlay, VXMON_TRACE_TO_OVERLAY),
            (.fromEndpoint, VXMON_TRACE_FROM_LXC), (.fromProxy, VXMON_TRACE_FROM_PROXY),
            (.fromHost, VXMON_TRACE_FROM_HOST), (.fromStack, VXMON_TRACE_FROM_STACK),
            (.fromOverlay, VXMON_TRACE_FROM_OVERLAY), (.fromNetwork, VXMON_TRACE_FROM_NETWORK),
            (.toNetwork, VXMON_TRACE_TO_NETWORK),
        ]
        for (point, c) in points { #expect(Int32(point.rawValue) == c, "\(point)") }
        #expect(Int32(TraceFlags.ipv6.rawValue) == VXMON_TRACE_FLAG_IPV6)
        #expect(Int32(TraceFlags.l3Device.rawValue) == VXMON_TRACE_FLAG_L3_DEVICE)
        #expect(Int32(TraceFlags.vxlan.rawValue) == VXMON_TRACE_FLAG_VXLAN)
        #expect(Int32(TraceFlags.geneve.rawValue) == VXMON_TRACE_FLAG_GENEVE)
    }
}

// MARK: - Event decoding, Cilium style

/// A little-endian record builder: fields are written at explicit offsets so each test reads like the
/// C struct it encodes. Offsets are Cilium's (bpf/lib/*.h), written out here, not taken from EventLayout.
struct RecordBuilder {
    var bytes: [UInt8]
    init(_ length: Int) { bytes = Array(repeating: 0, count: length) }
    mutating func u8(_ o: Int, _ v: UInt8) { bytes[o] = v }
    mutating func u16(_ o: Int, _ v: UInt16) { for i in 0..<2 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func u32(_ o: Int, _ v: UInt32) { for i in 0..<4 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func u64(_ o: Int, _ v: UInt64) { for i in 0..<8 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func raw(_ o: Int, _ v: [UInt8]) { for (i, b) in v.enumerated() { bytes[o + i] = b } }
    /// notify common header + capture lengths/version (the first 16 bytes of every capture message).
    mutating func capture(type: UInt8, subtype: UInt8, version: UInt8) {
        u8(0, type)
        u8(1, subtype)
        u16(2, 0x0102)
        u32(4, 0x1112_1314)
        u32(8, 0x2122_2324)
        u16(12, 0x3132)  // len_cap: more than the record holds, so the packet is clamped to what is there
        u8(14, version)
        u8(15, 0)
    }
}

let origIPv6: [UInt8] = Array(0x91...0xa0)

func decodeEvent(_ bytes: [UInt8], release: CiliumRelease = .v1_13) throws -> Event {
    var event = Event()
    try EventDecoder(release: release).decode(bytes.span.bytes, into: &event)
    return event
}

func checkCommon(_ h: NotifyHeader, type: UInt8, subtype: UInt8, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(h.type.rawValue == type, sourceLocation: sourceLocation)
    #expect(h.subtype == subtype, sourceLocation: sourceLocation)
    #expect(h.source == 0x0102, sourceLocation: sourceLocation)
    #expect(h.hash == 0x1112_1314, sourceLocation: sourceLocation)
}

@Suite("Event decoding with distinct byte patterns")
struct EventDecodeTests {
    static func traceRecord(version: UInt8, flags: UInt8) -> RecordBuilder {
        let length = [0: 32, 1: 48, 2: 56][Int(version)]!
        var r = RecordBuilder(length)
        r.capture(type: 4, subtype: 0x0a, version: version)
        r.u32(16, 0x4142_4344)  // src_label
        r.u32(20, 0x5152_5354)  // dst_label
        r.u16(24, 0x6162)  // dst_id
        r.u8(26, 0x71)  // reason
        r.u8(27, flags)  // flags
        r.u32(28, 0x8182_8384)  // ifindex
        if version >= 1 { r.raw(32, origIPv6) }  // orig_ip
        if version >= 2 { r.u64(48, 0xb1b2_b3b4_b5b6_b7b8) }  // ip_trace_id
        return r
    }

    @Test("trace v0, v1 (both releases), v2 (latest)", arguments: [UInt8(0), 1, 2])
    func trace(version: UInt8) throws {
        let r = Self.traceRecord(version: version, flags: 0x01)
        let e = try decodeEvent(r.bytes, release: version == 2 ? .latest : .v1_13)
        guard case .trace(let t) = e.message else {
            Issue.record("not a trace: \(e.message)")
            return
        }
        checkCommon(t.header, type: 4, subtype: 0x0a)
        #expect(t.observationPoint == .fromNetwork)
        #expect(t.lengthOriginal == 0x2122_2324)
        #expect(t.lengthCaptured == 0x3132)
        #expect(t.version == version)
        #expect(t.sourceIdentity == 0x4142_4344)
        #expect(t.destinationIdentity == 0x5152_5354)
        #expect(t.destinationID == 0x6162)
        #expect(t.reason == 0x71)
        #expect(t.flags == 0x01)
        #expect(t.ifindex == 0x8182_8384)
        if version == 0 {
            #expect(t.originalIP == nil)
        } else {
            #expect(t.originalIP == .v6(IPv6Address(high: 0x9192_9394_9596_9798, low: 0x999a_9b9c_9d9e_9fa0)))
        }
        #expect(t.ipTraceID == (version >= 2 ? 0xb1b2_b3b4_b5b6_b7b8 : 0))
        #expect(e.typeCode == 4)
        #expect(e.packetOffset == [32, 48, 56][Int(version)])
        #expect(e.packetLength == 0)  // len_cap 0x3132 clamped to the 0 bytes present
        #expect(e.packet.layers.isEmpty)
    }

    @Test("trace v1 with an IPv4 orig-ip and an encrypted reason")
    func traceIPv4OrigIP() throws {
        var r = Self.traceRecord(version: 1, flags: 0x00)
        r.u8(26, 0x82)
        let e = try decodeEvent(r.bytes)
        guard case .trace(let t) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(t.originalIP == .v4(IPv4Address(rawValue: 0x9192_9394)))
        #expect(t.isEncrypted)
        #expect(!t.isIPv6)
    }

    @Test("1.13 knows trace v0 and v1 only, and reads the version as a u16")
    func traceVersions113() throws {
        for (version, high, shown) in [(UInt8(2), UInt8(0), 2), (1, 1, 257), (0, 1, 256)] {
            var bytes = Self.traceRecord(version: 2, flags: 0).bytes
            bytes[14] = version
            bytes[15] = high
            do {
                _ = try decodeEvent(bytes, release: .v1_13)
                Issue.record("version \(version)/\(high) decoded")
            } catch {
                #expect("\(error)" == "Unrecognized trace event (version \(shown))")
            }
        }
        // The same v2 record is fine for latest.
        #expect(try decodeEvent(Self.traceRecord(version: 2, flags: 0).bytes, release: .latest).packetOffset == 56)
    }

    @Test("trace with an unknown version is an error", arguments: [UInt8(3), 7, 255])
    func traceUnknownVersion(version: UInt8) {
        let r = Self.traceRecord(version: 1, flags: 0)
        var bytes = r.bytes
        bytes[14] = version
        #expect(throws: EventDecodeError.self) { try decodeEvent(bytes) }
    }

    @Test("drop v1, v2, v3 (latest)", arguments: [UInt8(1), 2, 3])
    func drop(version: UInt8) throws {
        let length = [1: 36, 2: 40, 3: 48][Int(version)]!
        var r = RecordBuilder(length)
        r.capture(type: 1, subtype: 0x85, version: version)
        r.u32(16, 0x4142_4344)  // src_label
        r.u32(20, 0x5152_5354)  // dst_label
        r.u32(24, 0x6162_6364)  // dst_id
        r.u16(28, 0x7172)  // line
        r.u8(30, 0x73)  // file
        r.u8(31, 0xf4)  // ext_error (-12)
        r.u32(32, 0x8182_8384)  // ifindex
        if version >= 2 { r.u8(36, 0x01) }  // flags
        if version >= 3 { r.u64(40, 0xb1b2_b3b4_b5b6_b7b8) }  // ip_trace_id
        let e = try decodeEvent(r.bytes, release: .latest)
        guard case .drop(let d) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        checkCommon(d.header, type: 1, subtype: 0x85)
        #expect(d.reason == 0x85)
        #expect(d.lengthOriginal == 0x2122_2324)
        #expect(d.lengthCaptured == 0x3132)
        #expect(d.version == version)
        #expect(d.sourceIdentity == 0x4142_4344)
        #expect(d.destinationIdentity == 0x5152_5354)
        #expect(d.destinationID == 0x6162_6364)
        #expect(d.line == 0x7172)
        #expect(d.file == 0x73)
        #expect(d.extError == -12)
        #expect(d.ifindex == 0x8182_8384)
        #expect(d.flags == (version >= 2 ? 0x01 : 0))
        #expect(d.ipTraceID == (version >= 3 ? 0xb1b2_b3b4_b5b6_b7b8 : 0))
        #expect(e.packetOffset == length)
        #expect(e.packetLength == 0)
    }

    @Test("1.13: the drop header is 36 bytes whatever byte 14 says; no flags, no trace id", arguments: [UInt8(1), 2, 3, 9])
    func drop113(version: UInt8) throws {
        var r = RecordBuilder(48)
        r.capture(type: 1, subtype: 0x85, version: version)
        r.u8(15, 0x7f)  // 1.13 reads 12..15 as one u32 (CapLen) and never checks it
        r.u8(36, 0x03)  // latest's flags: IPv6 + L3 device
        r.u64(40, 0xb1b2_b3b4_b5b6_b7b8)
        let e = try decodeEvent(r.bytes, release: .v1_13)
        guard case .drop(let d) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(d.version == version)
        #expect(d.flags == 0)
        #expect(d.ipTraceID == 0)
        #expect(e.packetOffset == 36)
        #expect(e.packetLength == 12)
        #expect(e.packet.layers.isEmpty)  // 12 bytes: too short for the Ethernet header 1.13 parses
        #expect(e.packet.stop?.detail == .ethernetTooSmall)
    }

    @Test("debug message")
    func debug() throws {
        var r = RecordBuilder(20)
        r.u8(0, 2)
        r.u8(1, 0x30)
        r.u16(2, 0x0102)
        r.u32(4, 0x1112_1314)
        r.u32(8, 0x2122_2324)
        r.u32(12, 0x3132_3334)
        r.u32(16, 0x4142_4344)
        let e = try decodeEvent(r.bytes)
        guard case .debug(let m) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        checkCommon(m.header, type: 2, subtype: 0x30)
        #expect(m.arg1 == 0x2122_2324)
        #expect(m.arg2 == 0x3132_3334)
        #expect(m.arg3 == 0x4142_4344)
        #expect(e.packetLength == 0)
    }

    @Test("debug capture")
    func capture() throws {
        var r = RecordBuilder(24)
        r.capture(type: 3, subtype: 0x09, version: 1)
        r.u32(16, 0x4142_4344)
        r.u32(20, 0x5152_5354)
        let e = try decodeEvent(r.bytes)
        guard case .capture(let c) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        checkCommon(c.header, type: 3, subtype: 0x09)
        #expect(c.lengthOriginal == 0x2122_2324)
        #expect(c.lengthCaptured == 0x3132)
        #expect(c.version == 1)
        #expect(c.arg1 == 0x4142_4344)
        #expect(c.arg2 == 0x5152_5354)
        #expect(e.packetOffset == 24)
    }

    @Test("policy verdict, 1.13 layout (32 bytes) and latest layout (40 bytes)", arguments: CiliumRelease.allCases)
    func policyVerdict(release: CiliumRelease) throws {
        var r = RecordBuilder(release == .latest ? 40 : 32)
        r.capture(type: 5, subtype: 0, version: 1)
        r.u32(16, 0x4142_4344)  // remote_label
        r.u32(20, 0xf1f2_f3f4)  // verdict (negative)
        r.u16(24, 0x6162)  // dst_port
        r.u8(26, 0x63)  // proto
        r.u8(27, 0x5d)  // flags: dir 1 (ingress), ipv6, match 3, audited
        r.u8(28, 0x02)  // latest: auth_type
        if release == .latest { r.u32(32, 0x8182_8384) }  // latest: cookie
        let e = try decodeEvent(r.bytes, release: release)
        guard case .policyVerdict(let p) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        checkCommon(p.header, type: 5, subtype: 0)
        #expect(p.lengthOriginal == 0x2122_2324)
        #expect(p.lengthCaptured == 0x3132)
        #expect(p.version == 1)
        #expect(p.remoteIdentity == 0x4142_4344)
        #expect(p.verdict == Int32(bitPattern: 0xf1f2_f3f4))
        #expect(p.destinationPort == 0x6162)
        #expect(p.proto == 0x63)
        #expect(p.flags == 0x5d)
        #expect(p.isIngress)
        #expect(p.isIPv6)
        #expect(p.matchType == 3)
        #expect(p.isAudited)
        #expect(p.authType == (release == .latest ? 0x02 : nil))
        #expect(p.cookie == (release == .latest ? 0x8182_8384 : nil))
        #expect(e.packetOffset == (release == .latest ? 40 : 32))
        // The 1.13 layout is too short for the latest decoder.
        if release == .v1_13 {
            #expect(throws: EventDecodeError.self) { try decodeEvent(r.bytes, release: .latest) }
        }
    }

    @Test("trace-sock, 1.13 packed layout (38 bytes)")
    func traceSock113() throws {
        var r = RecordBuilder(38)
        r.u8(0, 7)
        r.u8(1, 0x02)  // xlate_point
        r.raw(2, origIPv6)  // dst_ip
        r.u16(18, 0x6162)  // dst_port
        r.u64(20, 0x7172_7374_7576_7778)  // sock_cookie
        r.u64(28, 0x8182_8384_8586_8788)  // cgroup_id
        r.u8(36, 0x02)  // l4_proto
        r.u8(37, 0x01)  // flags: IPv6
        let e = try decodeEvent(r.bytes, release: .v1_13)
        guard case .traceSock(let s) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(s.xlatePoint == 0x02)
        #expect(s.destinationIP == .v6(IPv6Address(high: 0x9192_9394_9596_9798, low: 0x999a_9b9c_9d9e_9fa0)))
        #expect(s.destinationPort == 0x6162)
        #expect(s.socketCookie == 0x7172_7374_7576_7778)
        #expect(s.cgroupID == 0x8182_8384_8586_8788)
        #expect(s.l4Proto == 0x02)
        #expect(s.flags == 0x01)
        #expect(e.packetLength == 0)
    }

    @Test("trace-sock, latest aligned layout (40 bytes)")
    func traceSockLatest() throws {
        var r = RecordBuilder(40)
        r.u8(0, 7)
        r.u8(1, 0x03)  // xlate_point
        r.u8(2, 0x01)  // l4_proto
        r.u8(3, 0x00)  // flags: IPv4
        r.u16(4, 0x6162)  // dst_port
        r.u16(6, 0xeeee)  // pad
        r.u64(8, 0x7172_7374_7576_7778)  // sock_cookie
        r.u64(16, 0x8182_8384_8586_8788)  // cgroup_id
        r.raw(24, origIPv6)  // dst_ip (IPv4 in the first four bytes)
        let e = try decodeEvent(r.bytes, release: .latest)
        guard case .traceSock(let s) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(s.xlatePoint == 0x03)
        #expect(s.l4Proto == 0x01)
        #expect(s.flags == 0x00)
        #expect(s.destinationPort == 0x6162)
        #expect(s.socketCookie == 0x7172_7374_7576_7778)
        #expect(s.cgroupID == 0x8182_8384_8586_8788)
        #expect(s.destinationIP == .v4(IPv4Address(rawValue: 0x9192_9394)))
        // 38 bytes are not enough for the latest layout.
        #expect(throws: EventDecodeError.self) { try decodeEvent(Array(r.bytes.prefix(38)), release: .latest) }
    }

    @Test("recorder capture")
    func recorder() throws {
        var r = RecordBuilder(24)
        r.u8(0, 6)
        r.u8(1, 0x02)  // subtype: egress
        r.u16(2, 0x0304)  // rule_id
        r.u32(4, 0xeeee_eeee)  // reserved
        r.u64(8, 0x1112_1314_1516_1718)  // boot_ns
        r.u32(16, 0x0000_0010)  // caplen: 16 bytes, none present
        r.u32(20, 0x5152_5354)  // len
        let e = try decodeEvent(r.bytes)
        guard case .recorder(let c) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(c.subtype == 0x02)
        #expect(c.ruleID == 0x0304)
        #expect(c.bootNanoseconds == 0x1112_1314_1516_1718)
        #expect(c.captureLength == 0x10)
        #expect(c.length == 0x5152_5354)
        #expect(e.packetOffset == 24)
        #expect(e.packetLength == 0)
    }

    @Test("recorder capture is 1.13 only: latest renders type 6 as an unknown event")
    func recorderLatest() throws {
        var r = RecordBuilder(24)
        r.u8(0, 6)
        r.u8(1, 0x01)
        let e = try decodeEvent(r.bytes, release: .latest)
        guard case .unknown(let t) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(t == .recorder)
        #expect(e.packetLength == 0)
    }

    @Test("unknown type and empty sample")
    func unknownAndEmpty() throws {
        let e = try decodeEvent([9, 0, 1, 2])
        guard case .unknown(let t) = e.message else { Issue.record("unexpected message: \(e.message)"); return }
        #expect(t.rawValue == 9)
        #expect(e.typeCode == 9)
        #expect(throws: EventDecodeError.self) { try decodeEvent([]) }
    }

    @Test("the packet is read at the header length and exactly len_cap bytes are decoded")
    func packetBounds() throws {
        let ping = hexBytes(
            "862aa97c330e56a12ef41b7c0800450000544d2e40004001d5b30a0000200a0001a808003260"
                + "0d1b0001101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30"
                + "3132333435363738393a3b3c3d3e3f4041424344454647")
        // Seven bytes of kernel padding after the packet: never decoded.
        let e = try decodeEvent(traceV1(ping) + Array(repeating: 0xee, count: 7))
        #expect(e.packetOffset == 48)
        #expect(e.packetLength == ping.count)
        #expect(e.packet.length == ping.count)
        #expect(e.packet.layers.map(\.kind) == [.ethernet, .ipv4, .icmpv4])
        // len_cap smaller than the packet: only len_cap bytes.
        let short = try decodeEvent(traceV1(ping, lenCap: 20))
        #expect(short.packetLength == 20)
        #expect(short.packet.layers.map(\.kind) == [.ethernet])
    }

    @Test("trace flag 0x02 (L3 device, latest): the packet starts at the IP header")
    func l3Device() throws {
        let ip = hexBytes("450000544d2e40004001d5b30a0000200a0001a8080032600d1b0001")
        let e = try decodeEvent(traceV1(ip, flags: 0x02), release: .latest)
        #expect(e.packet.layers.first?.kind == .ipv4)
    }

    @Test("1.13 has no L3-device bit: flag bits 1-7 are padding, the packet is dissected from Ethernet")
    func l3Device113() throws {
        let ip = hexBytes("450000544d2e40004001d5b30a0000200a0001a8080032600d1b0001")
        for flags in [UInt8(0x02), 0x04, 0x08, 0xfe] {
            let e = try decodeEvent(traceV1(ip, flags: flags), release: .v1_13)
            #expect(e.packet.layers.map(\.kind) == [.ethernet], "flags \(flags)")
        }
    }
}
