import Glibc

/// Where a lab keeps its state (tmpfs, gone after a reboot like the namespaces), its locks and its pins.
public struct LabPaths: Sendable {
    public static let stateRoot = "/run/vxmon"
    /// vxmon's lock files (0600): a directory only root can list or write (0711), so that no other
    /// user can open, hold, create or replace a lock (see `LockFiles`). Its name starts with a dot,
    /// which no lab name can (a lab named `locks` has its state in /run/vxmon/locks).
    public static let lockDirectory = "\(stateRoot)/.locks"
    /// bpffs's usual mount point, the parent of `pinRoot`.
    public static let bpffs = "/sys/fs/bpf"
    public static let pinRoot = "\(bpffs)/vxmon"

    public let lab: String
    public init(lab: String) { self.lab = lab }

    public var stateDirectory: String { "\(LabPaths.stateRoot)/\(lab)" }
    public var stateFile: String { "\(stateDirectory)/lab.json" }
    /// The lock `lab up` and `lab down` (and an agent while it starts) hold while they change the lab.
    public var labLockName: String { "lab-\(lab).lock" }
    public var labLock: String { "\(LabPaths.lockDirectory)/\(labLockName)" }
    /// The lock of the lab's one reader (a monitor, a recorder or the agent); holds its pid.
    public var monitorLockName: String { "monitor-\(lab).lock" }
    public var monitorLock: String { "\(LabPaths.lockDirectory)/\(monitorLockName)" }
    public var pinDirectory: String { "\(LabPaths.pinRoot)/\(lab)" }
    public func nodePins(_ node: String) -> String { "\(pinDirectory)/\(node)" }
    public func mapPins(_ node: String) -> String { "\(nodePins(node))/maps" }
    public func programPins(_ node: String) -> String { "\(nodePins(node))/progs" }
    public func map(_ node: String, _ name: String) -> String { "\(mapPins(node))/\(name)" }
    public func program(_ node: String, _ name: String) -> String { "\(programPins(node))/\(name)" }
}

extension LabPaths {
    /// Checks the pin directories that exist, before anything in them is used: /sys/fs/bpf/vxmon and
    /// the lab's directory must be directories (not symbolic links) owned by root that nobody else
    /// can write, and /sys/fs/bpf must not let anyone else rename them away. A user who made
    /// /sys/fs/bpf/vxmon first (bpffs mounts world-writable by default) could otherwise move the
    /// lab's pins out of it. Throws the refusal, which names the path and what to do.
    public func checkPinDirectories() throws {
        try LabPaths.checkBPFFSRoot()
        for path in [LabPaths.pinRoot, pinDirectory] {
            let (exists, problem) = FileSystem.rootOnlyProblem(path)
            if let problem { throw FileSystem.rootOnlyRefusal(path, problem, what: "its BPF pins") }
            if !exists { return }
        }
    }

    /// Creates the pin directories down to `node`'s maps and programs, mode 0700, and checks each
    /// (`checkPinDirectories`); what exists is checked, never changed.
    public func makePinDirectories(node: String) throws {
        try LabPaths.checkBPFFSRoot()
        try FileSystem.makeRootOnlyDirectories(
            [LabPaths.pinRoot, pinDirectory, nodePins(node), mapPins(node), programPins(node)], what: "its BPF pins")
    }

    /// /sys/fs/bpf owned by root, and writable by others only with the sticky bit (a bpffs mount root
    /// always has it): else anyone could rename /sys/fs/bpf/vxmon away and put a directory of theirs
    /// in its place.
    static func checkBPFFSRoot() throws {
        var st = stat()
        guard lstat(bpffs, &st) == 0 else { return }
        // 0o1000: S_ISVTX, the sticky bit.
        if st.st_uid != 0 || (st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0) {
            throw VxmonError(
                "refusing to use \(bpffs): it is owned by uid \(st.st_uid), mode \(FileSystem.octalMode(st)), so "
                    + "someone other than root could replace \(pinRoot); mount bpffs as root with "
                    + "`mount -t bpf bpf \(bpffs) -o mode=0700`")
        }
    }
}
