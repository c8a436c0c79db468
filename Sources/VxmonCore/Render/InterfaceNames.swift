/// ifindex -> interface name, per node (ifindexes are per network namespace, so two nodes can both
/// have an ifindex 3). Replay fills it from recording records, the live monitor from each node's netns.
public final class InterfaceNames: @unchecked Sendable {
    private var tables: [String: [UInt32: String]] = [:]

    public init() {}

    /// Records `name` for `ifindex` on `node` (nil: events without a node). A later entry wins.
    public func set(_ ifindex: UInt32, _ name: String, node: String? = nil) {
        tables[node ?? "", default: [:]][ifindex] = name
    }

    public func name(_ ifindex: UInt32, node: String?) -> String? {
        tables[node ?? ""]?[ifindex]
    }

    /// Appends the name, or the decimal ifindex when unknown (as Cilium's link cache does on a miss).
    public func append(ifindex: UInt32, node: String?, to out: OutputBuffer) {
        if let name = name(ifindex, node: node) {
            out.appendSanitized(name)
        } else {
            out.decimal(ifindex)
        }
    }

    public var isEmpty: Bool { tables.isEmpty }
}

extension OutputBuffer {
    /// Appends text that came from outside (interface names, node names) with control characters
    /// replaced, so nothing from a recording can drive a terminal.
    public func appendSanitized(_ s: String) {
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (v >= 0x7f && v <= 0x9f) {
                append(byte: UInt8(ascii: "?"))  // C0, DEL and C1 controls (ESC, CSI) never reach a terminal
            } else if v < 0x80 {
                append(byte: UInt8(v))
            } else {
                for b in String(scalar).utf8 { append(byte: b) }
            }
        }
    }
}
