import Foundation
import Testing
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// Nothing a local user can create or hold stops or redirects vxmon. The hostile steps run as user
// nobody (setpriv, no capabilities); the oracles are the kernel's answers to them (errno, stat(2),
// bpftool's view of the loaded programs) and vxmon's exit status and messages.

@Suite(
    "local users cannot block or hijack a lab (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LocalUserTests {
    static let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let python = "/usr/bin/python3"
    static let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]

    /// Tries to take what vxmon locks with, as nobody: `flock PATH` opens the file and takes a shared
    /// lock; `bind NAME` binds the abstract Unix socket name (the lab lock before). Prints HELD and
    /// holds it for a minute, or prints the errno's name and ends.
    static let holder = """
        import errno, fcntl, os, socket, sys, time
        what, target = sys.argv[1], sys.argv[2]
        try:
            if what == "flock":
                fd = os.open(target, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind("\\0" + target)
            print("HELD", flush=True)
        except OSError as e:
            print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
            sys.exit(0)
        time.sleep(60)
        """

    /// Starts the holder as nobody; its output goes to `output`. The caller stops it.
    static func startHolder(_ what: String, _ target: String, output: String) throws -> Process {
        let setpriv = try #require(setpriv, "setpriv (util-linux) is needed")
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: setpriv)
        p.arguments = nobody + [python, "-c", holder, what, target]
        p.standardOutput = FileHandle(forWritingAtPath: output)
        p.standardError = FileHandle(forWritingAtPath: output)
        try p.run()
        return p
    }

    /// What the holder said (its first line), waiting up to 10 s for it.
    static func holderSaid(_ output: String) -> String {
        _ = LabAgentTests.waitFor(10) { LabAgentTests.text(output).contains("\n") }
        return String(LabAgentTests.text(output).split(separator: "\n").first ?? "")
    }

    /// Owner and permission bits of `path` (lstat), or nil.
    static func owner(_ path: String) -> (uid: uid_t, mode: mode_t, directory: Bool)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_mode & 0o777, st.st_mode & S_IFMT == S_IFDIR)
    }

    static func temporaryDirectory(_ tag: String) throws -> String {
        let dir = NSTemporaryDirectory() + "/vxmon-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func down(_ lab: String) -> CommandResult? {
        try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
    }

    @Test("the lab lock: nobody can neither open its file (0600, in a directory only root can list or write) nor make `lab down` wait by binding the old abstract name")
    func labLock() throws {
        try LabGate.check()
        let lab = LabNames.make("ll")
        let paths = LabPaths(lab: lab)
        let dir = try Self.temporaryDirectory("ll")
        defer {
            _ = Self.down(lab)
            try? FileManager.default.removeItem(atPath: dir)
        }
        // Root takes it once, so that its file exists for nobody to try.
        var lock: LabLock? = try LabLock(lab: lab, waitSeconds: 0)
        let directory = try #require(Self.owner(LabPaths.lockDirectory))
        #expect(directory.uid == 0 && directory.mode == 0o711 && directory.directory, "\(directory)")
        let file = try #require(Self.owner(paths.labLock))
        #expect(file.uid == 0 && file.mode == 0o600 && !file.directory, "\(file)")
        let opener = try Self.startHolder("flock", paths.labLock, output: dir + "/open")
        defer { if opener.isRunning { opener.terminate() } }
        #expect(Self.holderSaid(dir + "/open") == "EACCES")
        lock = nil
        _ = lock

        // The name the lab lock used to be: anyone can bind it, and it must not matter.
        let binder = try Self.startHolder("bind", "vxmon-lab-\(lab)", output: dir + "/bind")
        defer { if binder.isRunning { binder.terminate() } }
        try #require(Self.holderSaid(dir + "/bind") == "HELD", "nobody binds the abstract name")
        // The old lock waited 60 s here and failed; `timeout` ends such a wait at 30 s (status 124).
        let down = try Shell.run(["timeout", "30", FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
        #expect(down.status == 0, "\(down.status): \(down.errorOutput)")
        #expect(!down.errorOutput.contains("waiting for it"), "\(down.errorOutput)")
        #expect(down.output == "lab '\(lab)' is not up; nothing to remove\n", "\(down.output)")
        // lab down took its lock and removed the file.
        #expect(Self.owner(paths.labLock) == nil)
    }

    @Test("the monitor lock: nobody cannot open it, so cannot hold a shared lock that refuses the next reader")
    func monitorLock() throws {
        try LabGate.check()
        let lab = LabNames.make("ml")
        let paths = LabPaths(lab: lab)
        let dir = try Self.temporaryDirectory("ml")
        defer {
            _ = Self.down(lab)
            try? FileManager.default.removeItem(atPath: dir)
        }
        // A reader comes and goes, leaving the file.
        var reader: MonitorLock? = try MonitorLock(paths: paths)
        reader = nil
        _ = reader
        let file = try #require(Self.owner(paths.monitorLock))
        #expect(file.uid == 0 && file.mode == 0o600, "\(file)")
        let holder = try Self.startHolder("flock", paths.monitorLock, output: dir + "/out")
        defer { if holder.isRunning { holder.terminate() } }
        #expect(Self.holderSaid(dir + "/out") == "EACCES")
        // The next reader is not refused (before, nobody's shared lock made it "already reading").
        var next: MonitorLock?
        do { next = try MonitorLock(paths: paths) } catch { Issue.record("the next reader is refused: \(error)") }
        #expect(MonitorLock.holder(paths: paths) == getpid())
        next = nil
        _ = next
        #expect(MonitorLock.holder(paths: paths) == nil)
    }

    @Test(
        "a /sys/fs/bpf/vxmon that nobody made first in a world-writable bpffs: lab up refuses it, names it, says what to do, and builds nothing",
        arguments: ["directory", "symlink"])
    func foreignPinDirectory(_ kind: String) throws {
        try LabGate.check()
        let setpriv = try #require(Self.setpriv, "setpriv (util-linux) is needed")
        try #require(Shell.hasTool("unshare"), "unshare (util-linux) is needed")
        let lab = LabNames.make("pd")
        let dir = try Self.temporaryDirectory("pd")
        defer {
            _ = Self.down(lab)
            try? FileManager.default.removeItem(atPath: dir)
        }
        // A bpffs of its own, mounted 1777 as bpffs mounts by default, in a private mount namespace:
        // the lab tests running meanwhile keep the real /sys/fs/bpf/vxmon, and whatever is mounted or
        // pinned here goes with the namespace. Nobody makes /sys/fs/bpf/vxmon first (where the mount
        // does not let nobody, root makes it and gives it to nobody).
        let nobody = ([setpriv] + Self.nobody).joined(separator: " ")
        let make =
            kind == "directory"
            ? "\(nobody) mkdir /sys/fs/bpf/vxmon || { mkdir /sys/fs/bpf/vxmon && chown 65534:65534 /sys/fs/bpf/vxmon; }"
            : "\(nobody) mkdir /sys/fs/bpf/nobodys || { mkdir /sys/fs/bpf/nobodys && chown 65534:65534 /sys/fs/bpf/nobodys; }; "
                + "\(nobody) ln -s nobodys /sys/fs/bpf/vxmon || { ln -s nobodys /sys/fs/bpf/vxmon && chown -h 65534:65534 /sys/fs/bpf/vxmon; }"
        let script = """
            mount -t bpf bpf /sys/fs/bpf -o mode=1777 || exit 90
            \(make)
            echo "made $(stat -c '%u %F' /sys/fs/bpf/vxmon)"
            '\(FaultTests.vxmon)' lab up --lab \(lab) --no-agent --no-hubble 2>'\(dir)/err' >'\(dir)/out'
            echo "status $?"
            echo "entries $(ls -A /sys/fs/bpf/vxmon/ | wc -l)"
            echo "namespaces $(ip netns list | grep -c '^\(lab)-')"
            """
        let run = try Shell.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], check: false)
        let lines = run.output.split(separator: "\n").map(String.init)
        try #require(run.status == 0, "\(run.status): \(run.output) \(run.errorOutput)")
        #expect(lines.first == (kind == "directory" ? "made 65534 directory" : "made 65534 symbolic link"), "\(lines)")
        #expect(lines.contains("status 1"), "lab up must refuse: \(lines) \(LabAgentTests.text(dir + "/err"))")
        #expect(lines.contains("entries 0"), "nothing is put in it: \(lines)")
        #expect(lines.contains("namespaces 0"), "nothing is built: \(lines)")
        let error = LabAgentTests.text(dir + "/err")
        let why = kind == "directory" ? "it is owned by uid 65534, not by root" : "it is a symbolic link"
        #expect(error.contains("refusing to use /sys/fs/bpf/vxmon: \(why)"), "\(error)")
        #expect(error.contains("remove it as root (`rm -r /sys/fs/bpf/vxmon`)"), "\(error)")
        #expect(error.split(separator: "\n").count == 1, "one line: \(error)")
    }

    /// The kernel id of the program pinned at `path`, from bpftool.
    static func programID(pinned path: String) throws -> Int {
        let show = try Shell.run(["bpftool", "prog", "show", "pinned", path, "-j"], check: false)
        let object = try JSONSerialization.jsonObject(with: Data(show.output.utf8)) as? [String: Any]
        return try #require(object?["id"] as? Int, "bpftool: \(show.output) \(show.errorOutput)")
    }

    static func programLoaded(_ id: Int) -> Bool {
        (try? Shell.run(["bpftool", "prog", "show", "id", "\(id)"], check: false).status) == 0
    }

    @Test(
        "lab down checks that the kernel freed the lab's programs: one kept by a process of nobody's left in a node, or by a pin elsewhere, makes it say so and fail",
        arguments: ["process", "pin"])
    func downVerifies(_ holder: String) throws {
        try LabGate.check()
        let setpriv = try #require(Self.setpriv, "setpriv (util-linux) is needed")
        try #require(Shell.hasTool("bpftool"), "bpftool is needed (scripts/setup.sh test)")
        let lab = LabNames.make("dv")
        let paths = LabPaths(lab: lab)
        let extraPin = "\(LabPaths.bpffs)/\(lab)-extra"
        var sleeper: Process?
        defer {
            if let sleeper, sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) }
            unlink(extraPin)
            _ = Self.down(lab)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-agent", "--no-hubble"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        // vxmon made the lab's pin directories itself: root's, 0700. /sys/fs/bpf/vxmon, shared by the labs
        // and perhaps made by an older vxmon (0755), is root's and nobody else's to write.
        let pinRoot = try #require(Self.owner(LabPaths.pinRoot))
        #expect(pinRoot.uid == 0 && pinRoot.mode & 0o022 == 0 && pinRoot.directory, "\(pinRoot)")
        for path in [paths.pinDirectory, paths.nodePins("worker"), paths.programPins("worker")] {
            let dir = try #require(Self.owner(path))
            #expect(dir.uid == 0 && dir.mode == 0o700 && dir.directory, "\(path): \(dir)")
        }
        // The overlay program of node worker: attached to its vxlan device, which (unlike the veths)
        // has no peer in another namespace to take it down with it.
        let id = try Self.programID(pinned: paths.program("worker", "vxmon_from_overlay"))
        if holder == "process" {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") { p.executableURL = URL(fileURLWithPath: "/sbin/ip") }
            p.arguments = ["netns", "exec", "\(lab)-worker", setpriv] + Self.nobody + ["sleep", "120"]
            try p.run()
            sleeper = p
            // Inside once its namespace is the node's.
            var node = stat()
            #expect(stat(NetworkNamespace.path("\(lab)-worker"), &node) == 0)
            try #require(
                LabAgentTests.waitFor(5) {
                    var st = stat()
                    return stat("/proc/\(p.processIdentifier)/ns/net", &st) == 0 && st.st_ino == node.st_ino
                        && LabAgentTests.text("/proc/\(p.processIdentifier)/comm") == "sleep\n"
                })
        } else {
            try #require(try Shell.run(["bpftool", "prog", "pin", "id", "\(id)", extraPin], check: false).status == 0)
        }

        let down = try Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
        #expect(down.status == 1, "\(down.status): \(down.output) \(down.errorOutput)")
        #expect(!down.output.contains("is down"), "\(down.output)")
        #expect(
            down.errorOutput.contains("the kernel still has") && down.errorOutput.contains("program vxmon_from_overlay (id \(id))"),
            "\(down.errorOutput)")
        if let sleeper {
            #expect(down.errorOutput.contains("pid \(sleeper.processIdentifier) (sleep) in \(lab)-worker"), "\(down.errorOutput)")
        }
        // It told the truth: the kernel still has the program.
        #expect(Self.programLoaded(id))
        // And what it could remove is gone.
        #expect(Self.owner(paths.pinDirectory) == nil && Self.owner(paths.stateDirectory) == nil)
        #expect(NetworkNamespace.list().filter { $0.hasPrefix(lab + "-") }.isEmpty)

        // Once the holder lets go, the kernel frees it, and lab down has nothing left to do.
        if let sleeper { kill(sleeper.processIdentifier, SIGKILL) }
        unlink(extraPin)
        #expect(LabAgentTests.waitFor(15) { !Self.programLoaded(id) }, "program \(id) freed")
        let again = try Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
        #expect(again.status == 0, "\(again.errorOutput)")
    }
}
