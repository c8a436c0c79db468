/// Where a lab keeps its state (tmpfs, gone after a reboot like the namespaces) and its pins.
public struct LabPaths: Sendable {
    public static let stateRoot = "/run/vxmon"
    public static let pinRoot = "/sys/fs/bpf/vxmon"

    public let lab: String
    public init(lab: String) { self.lab = lab }

    public var stateDirectory: String { "\(LabPaths.stateRoot)/\(lab)" }
    public var stateFile: String { "\(stateDirectory)/lab.json" }
    public var monitorLock: String { "\(stateDirectory)/monitor.lock" }
    public var pinDirectory: String { "\(LabPaths.pinRoot)/\(lab)" }
    public func nodePins(_ node: String) -> String { "\(pinDirectory)/\(node)" }
    public func mapPins(_ node: String) -> String { "\(nodePins(node))/maps" }
    public func programPins(_ node: String) -> String { "\(nodePins(node))/progs" }
    public func map(_ node: String, _ name: String) -> String { "\(mapPins(node))/\(name)" }
    public func program(_ node: String, _ name: String) -> String { "\(programPins(node))/\(name)" }
}
