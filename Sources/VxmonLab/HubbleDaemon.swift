import Glibc
import VxmonLive

extension LabPaths {
    /// The observer servers' process (`vxmon-hubble`): pid (written once every node listens) and log.
    public var hubblePIDFile: String { "\(stateDirectory)/hubble.pid" }
    public var hubbleLog: String { "\(stateDirectory)/hubble.log" }
    /// The arguments vxmon-hubble was last started with (each ended by a NUL), so that whoever restarts it
    /// (`lab up`, the agent) starts it the same way: a restart must not drop TLS.
    public var hubbleArguments: String { "\(stateDirectory)/hubble.args" }
}

/// The TLS flags of vxmon-hubble (`--tls-cert-file`, `--tls-key-file`, `--tls-client-ca-files`,
/// `--tls-no-client-auth`, `--disable-tls`) and their rules, shared by vxmon-hubble and `vxmon lab up`
/// (which passes them on as `--hubble-tls-...`, `--hubble-disable-tls`).
public struct HubbleTLSFlags: Sendable, Equatable {
    public var certFile: String?
    public var keyFile: String?
    /// As given: each may be a comma-separated list.
    public var clientCAFiles: [String] = []
    public var noClientAuth = false
    public var disable = false

    public init(
        certFile: String? = nil, keyFile: String? = nil, clientCAFiles: [String] = [], noClientAuth: Bool = false,
        disable: Bool = false
    ) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFiles = clientCAFiles
        self.noClientAuth = noClientAuth
        self.disable = disable
    }

    /// The client CA files, from repeated flags and comma-separated lists (Cilium's
    /// `--hubble-tls-client-ca-files` takes both).
    public var caFiles: [String] {
        clientCAFiles.flatMap { $0.split(separator: ",", omittingEmptySubsequences: true).map(String.init) }
    }

    /// Whether any flag is given at all.
    public var isEmpty: Bool { self == HubbleTLSFlags() }

    /// Whether they ask for TLS.
    public var enabled: Bool { !disable && !isEmpty }

    /// What is wrong with the combination (a usage error), or nil. `prefix` is "hubble-" for `lab up`.
    public func problem(prefix: String = "") -> String? {
        let tlsGiven = certFile != nil || keyFile != nil || !clientCAFiles.isEmpty || noClientAuth
        if disable { return tlsGiven ? "--\(prefix)disable-tls cannot go with --\(prefix)tls-* options" : nil }
        guard tlsGiven else { return nil }
        guard let certFile, let keyFile, !certFile.isEmpty, !keyFile.isEmpty else {
            return "TLS needs both --\(prefix)tls-cert-file and --\(prefix)tls-key-file"
        }
        if noClientAuth && !clientCAFiles.isEmpty {
            return "--\(prefix)tls-no-client-auth cannot go with --\(prefix)tls-client-ca-files"
        }
        if !noClientAuth && caFiles.isEmpty {
            return "mutual TLS needs --\(prefix)tls-client-ca-files (the CAs of the clients' certificates); "
                + "--\(prefix)tls-no-client-auth serves TLS without client certificates"
        }
        return nil
    }

    /// vxmon-hubble's arguments for them, each path made absolute (against the current directory):
    /// they are recorded for restarts, which may run anywhere.
    public var arguments: [String] {
        var out: [String] = []
        if disable { out.append("--disable-tls") }
        if let certFile { out += ["--tls-cert-file", Self.absolute(certFile)] }
        if let keyFile { out += ["--tls-key-file", Self.absolute(keyFile)] }
        for file in caFiles { out += ["--tls-client-ca-files", Self.absolute(file)] }
        if noClientAuth { out.append("--tls-no-client-auth") }
        return out
    }

    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }
}

/// Starting and stopping a lab's Hubble observer servers (`vxmon-hubble`, its own executable so
/// that vxmon itself never links gRPC). Like the agent it runs in its own session, logs to the lab's
/// `hubble.log`, and is stopped by `lab down`; it is a client of the agent, so it starts after it.
public enum HubbleDaemon {
    /// `vxmon-hubble` beside the running vxmon executable, if it was built.
    public static func executable(besides vxmon: String) -> String? {
        guard let slash = vxmon.lastIndex(of: "/") else { return nil }
        let path = String(vxmon[..<slash]) + "/vxmon-hubble"
        return access(path, X_OK) == 0 ? path : nil
    }

    /// `vxmon-hubble` beside the vxmon executable that is running, if it was built.
    public static var executable: String? { Preflight.executablePath.flatMap(executable(besides:)) }

    /// What `lab up` says on stderr when `vxmon-hubble` was not built beside vxmon (`make demo` builds
    /// vxmon alone, to skip gRPC's build); everything else of the lab works without it.
    public static let notBuiltMessage =
        "vxmon: Hubble observers not started: vxmon-hubble is not built beside vxmon "
        + "(`make hubble` builds it; then `vxmon lab up` starts them on the lab that is up)"

    /// The pid of the lab's running `vxmon-hubble` (from its pid file, checked against the process).
    public static func running(_ paths: LabPaths) -> Int32? {
        guard let text = try? FileSystem.read(paths.hubblePIDFile),
            let pid = Int32(text.split(separator: "\n").first ?? ""), pid > 0, kill(pid, 0) == 0,
            let cmdline = try? FileSystem.read("/proc/\(pid)/cmdline")
        else { return nil }
        return isServer(pid, cmdline: cmdline, lab: paths.lab) ? pid : nil
    }

    /// Whether `pid` is a lab's vxmon-hubble: root's process, running a vxmon-hubble executable (its
    /// /proc exe link, which another user cannot fake as a command line can), with `--lab <lab>`.
    static func isServer(_ pid: Int32, cmdline: String, lab: String) -> Bool {
        var st = stat()
        guard lstat("/proc/\(pid)", &st) == 0, st.st_uid == 0 else { return false }
        guard var exe = FileSystem.readLink("/proc/\(pid)/exe") else { return false }
        // A rebuilt executable's link reads "<path> (deleted)".
        if exe.hasSuffix(" (deleted)") { exe.removeLast(" (deleted)".count) }
        let words = cmdline.split(separator: "\0").map(String.init)
        guard exe.hasSuffix("/vxmon-hubble"), let i = words.firstIndex(of: "--lab"), i + 1 < words.count else { return false }
        return words[i + 1] == lab
    }

    /// Starts the servers unless they run; returns once every node listens (the pid file is written
    /// then). Returns the pid and whether it was started now. `arguments` nil: the ones it was last
    /// started with in this lab (none for a new lab), so that a restart keeps its TLS; given, they are
    /// recorded for the next restart.
    @discardableResult
    public static func start(lab: String, executable: String, arguments: [String]? = nil) throws -> (pid: Int32, started: Bool) {
        let paths = LabPaths(lab: lab)
        if let pid = running(paths) { return (pid, false) }
        // One being started (by `lab up` or the agent) has no pid file until it listens: wait for it
        // rather than start a second that cannot bind.
        if HubbleKeeper.starting(lab) {
            for _ in 0..<400 {
                if let pid = running(paths) { return (pid, false) }
                if !HubbleKeeper.starting(lab) { break }
                usleep(25_000)
            }
            if let pid = running(paths) { return (pid, false) }
        }
        unlink(paths.hubblePIDFile)
        try FileSystem.makeDirectories(paths.stateDirectory)
        let previous = try? FileSystem.read(paths.hubbleArguments)
        let arguments = arguments ?? recordedArguments(paths)
        try FileSystem.writeText(paths.hubbleArguments, arguments.map { $0 + "\0" }.joined())
        // A start that fails leaves the arguments of the last good one for restarts (a mistyped
        // certificate path would otherwise fail every restart after it).
        func failed(_ message: String) -> VxmonError {
            if let previous { try? FileSystem.writeText(paths.hubbleArguments, previous) } else { unlink(paths.hubbleArguments) }
            return VxmonError(message)
        }
        let pid: Int32
        do {
            pid = try Shell.spawnDaemon([executable, "--lab", lab] + arguments, log: paths.hubbleLog, what: "vxmon-hubble")
        } catch {
            throw failed("\(error)")
        }
        for _ in 0..<400 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw failed("vxmon-hubble of lab '\(lab)' exited at start; see \(paths.hubbleLog)")
            }
            if running(paths) == pid { return (pid, true) }
            usleep(25_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, nil, 0)
        throw failed("vxmon-hubble of lab '\(lab)' did not listen within 10 s; see \(paths.hubbleLog)")
    }

    /// The arguments of the last start in this lab (none if there was none): each ends with a NUL,
    /// which no argument can hold.
    public static func recordedArguments(_ paths: LabPaths) -> [String] {
        guard let text = try? FileSystem.read(paths.hubbleArguments) else { return [] }
        return text.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Stops the lab's servers (SIGTERM, then SIGKILL after `graceSeconds`). Returns the pid.
    @discardableResult
    public static func stop(_ paths: LabPaths, graceSeconds: Double = 3) -> Int32? {
        guard let pid = running(paths) else {
            unlink(paths.hubblePIDFile)
            return nil
        }
        kill(pid, SIGTERM)
        var waited = 0.0
        while waited < graceSeconds, kill(pid, 0) == 0 {
            usleep(20_000)
            waited += 0.02
        }
        if kill(pid, 0) == 0 {
            kill(pid, SIGKILL)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(10_000) }
        }
        unlink(paths.hubblePIDFile)
        return pid
    }
}
