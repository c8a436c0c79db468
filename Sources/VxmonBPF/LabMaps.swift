import CVxmonABI
import Glibc
import VxmonLive

/// Map and program names of bpf/vxmon.bpf.c (see bpf/include/vxmon/lab.h).
public enum DatapathNames {
    public static let fromContainer = "vxmon_from_container"
    public static let fromOverlay = "vxmon_from_overlay"
    public static let fromNetwork = "vxmon_from_network"
    public static let programs = [fromContainer, fromOverlay, fromNetwork]

    public static let endpoints = "vxmon_endpoints"
    public static let ipcache = "vxmon_ipcache"
    public static let tunnel = "vxmon_tunnel_map"
    public static let policy = "vxmon_policy"
    public static let config = "vxmon_config"
    public static let stats = "vxmon_stats"
    public static let perfEvents = "cilium_events"
    public static let ringEvents = "vxmon_events_rb"
}

/// Which buffer the datapath writes events to (vxmon_config.events_mode).
public enum BufferKind: String, Sendable, CaseIterable {
    /// `cilium_events`, a PERF_EVENT_ARRAY (Cilium's own transport).
    case perf
    /// `vxmon_events_rb`, a BPF ring buffer.
    case ring

    /// The vxmon_config.events_mode value that makes the datapath write to this buffer.
    public var eventsMode: UInt32 { self == .perf ? UInt32(VXMON_EVENTS_PERF) : UInt32(VXMON_EVENTS_RING) }
}

/// One node's pinned maps, opened with `bpf_obj_get`, with typed accessors for the lab.h structs.
public final class NodeMaps {
    public let node: String
    public let config: BPFMap
    public let endpoints: BPFMap
    public let ipcache: BPFMap
    public let tunnel: BPFMap
    public let policy: BPFMap
    public let stats: BPFMap
    private let paths: LabPaths

    /// Opens the pins after checking the directories they are in (`LabPaths.checkPinDirectories`):
    /// a pin in a directory someone other than root could change may not be the lab's.
    public init(paths: LabPaths, node: String) throws {
        try paths.checkPinDirectories()
        self.paths = paths
        self.node = node
        config = try BPFMap(pinned: paths.map(node, DatapathNames.config))
        endpoints = try BPFMap(pinned: paths.map(node, DatapathNames.endpoints))
        ipcache = try BPFMap(pinned: paths.map(node, DatapathNames.ipcache))
        tunnel = try BPFMap(pinned: paths.map(node, DatapathNames.tunnel))
        policy = try BPFMap(pinned: paths.map(node, DatapathNames.policy))
        stats = try BPFMap(pinned: paths.map(node, DatapathNames.stats))
    }

    /// The event buffer map of `kind`, opened from its pin (its directories checked again).
    public func eventMap(_ kind: BufferKind) throws -> BPFMap {
        try paths.checkPinDirectories()
        return try BPFMap(pinned: paths.map(node, kind == .perf ? DatapathNames.perfEvents : DatapathNames.ringEvents))
    }

    // MARK: config

    public func readConfig() -> vxmon_config { config.lookup(UInt32(0), as: vxmon_config.self) ?? vxmon_config() }

    public func writeConfig(_ value: vxmon_config) throws(LibbpfError) { try config.update(UInt32(0), value) }

    /// Switches event emission (VXMON_EVENTS_OFF / _PERF / _RING) without touching the rest.
    public func setEventsMode(_ mode: UInt32) throws(LibbpfError) {
        var c = readConfig()
        c.events_mode = mode
        try writeConfig(c)
    }

    /// Turns the from-network traces of VXLAN packets on eth0 on or off (VXMON_CFG_TRACE_UNDERLAY).
    /// Counting of every event written (VXMON_STAT_EMITTED), for exact accounting in a soak.
    public func setCountEmitted(_ on: Bool) throws(LibbpfError) {
        var c = readConfig()
        let flag = UInt32(VXMON_CFG_COUNT_EMITTED)
        c.flags = on ? c.flags | flag : c.flags & ~flag
        try writeConfig(c)
    }

    public func setTraceUnderlay(_ on: Bool) throws(LibbpfError) {
        var c = readConfig()
        let flag = UInt32(VXMON_CFG_TRACE_UNDERLAY)
        c.flags = on ? c.flags | flag : c.flags & ~flag
        try writeConfig(c)
    }

    // MARK: endpoints, ipcache, tunnel

    /// Local pods: (IPv4 as a host-order value, endpoint info).
    public func endpointEntries() -> [(ip: UInt32, info: vxmon_endpoint_info)] {
        endpoints.entries(UInt32.self, vxmon_endpoint_info.self).map { (UInt32(bigEndian: $0.0), $0.1) }
            .sorted { $0.ip < $1.ip }
    }

    public func setEndpoint(ip: UInt32, _ info: vxmon_endpoint_info) throws(LibbpfError) {
        try endpoints.update(ip.bigEndian, info)
    }

    /// (IPv4, identity) pairs.
    public func ipcacheEntries() -> [(ip: UInt32, identity: UInt32)] {
        ipcache.entries(UInt32.self, vxmon_ipcache_info.self).map { (UInt32(bigEndian: $0.0), $0.1.identity) }
            .sorted { $0.ip < $1.ip }
    }

    public func setIPCache(ip: UInt32, identity: UInt32) throws(LibbpfError) {
        var info = vxmon_ipcache_info()
        info.identity = identity
        try ipcache.update(ip.bigEndian, info)
    }

    /// (prefix, prefix length, remote node IP), all addresses as host-order values.
    public func tunnelEntries() -> [(prefix: UInt32, length: UInt32, remote: UInt32)] {
        tunnel.entries(vxmon_tunnel_key.self, vxmon_tunnel_info.self)
            .map { (UInt32(bigEndian: $0.0.ip), $0.0.prefixlen, UInt32(bigEndian: $0.1.remote_ip)) }
            .sorted { ($0.prefix, $0.length) < ($1.prefix, $1.length) }
    }

    public func setTunnel(prefix: UInt32, length: UInt32, remote: UInt32) throws(LibbpfError) {
        var key = vxmon_tunnel_key()
        key.prefixlen = length
        key.ip = prefix.bigEndian
        var info = vxmon_tunnel_info()
        info.remote_ip = remote.bigEndian
        try tunnel.update(key, info)
    }

    // MARK: policy

    public func policyEntries() -> [(key: vxmon_policy_key, action: UInt8)] {
        policy.entries(vxmon_policy_key.self, vxmon_policy_entry.self).map { ($0.0, $0.1.action) }
            .sorted {
                ($0.key.src_identity, $0.key.dst_identity, $0.key.proto, $0.key.dport)
                    < ($1.key.src_identity, $1.key.dst_identity, $1.key.proto, $1.key.dport)
            }
    }

    /// Adds or replaces a rule (VXMON_POLICY_DENY or _ALLOW).
    public func setPolicy(source: UInt32, destination: UInt32, proto: UInt8, port: UInt16, deny: Bool)
        throws(LibbpfError)
    {
        var entry = vxmon_policy_entry()
        entry.action = deny ? UInt8(VXMON_POLICY_DENY) : UInt8(VXMON_POLICY_ALLOW)
        try policy.update(vxmon_policy_key(source: source, destination: destination, proto: proto, port: port), entry)
    }

    /// Removes a rule; false if there was none.
    public func removePolicy(source: UInt32, destination: UInt32, proto: UInt8, port: UInt16) throws(LibbpfError)
        -> Bool
    {
        try policy.delete(vxmon_policy_key(source: source, destination: destination, proto: proto, port: port))
    }

    /// The current events_mode (VXMON_EVENTS_OFF 0, _PERF 1, _RING 2).
    public var eventsMode: UInt32 { readConfig().events_mode }

    // MARK: stats

    /// Per-CPU values of a vxmon_stats counter (VXMON_STAT_*).
    public func statCounters(_ index: Int32) -> [UInt64] { stats.perCPUCounters(UInt32(index)) }
}

extension vxmon_policy_key {
    public init(source: UInt32, destination: UInt32, proto: UInt8, port: UInt16) {
        self.init()
        src_identity = source
        dst_identity = destination
        self.proto = proto
        dport = port
    }
}
