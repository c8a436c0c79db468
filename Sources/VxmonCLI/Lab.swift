import ArgumentParser
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

/// vxmon_config.events_mode as a word.
func eventsModeName(_ mode: UInt32) -> String {
    switch mode {
    case 0: "off"
    case 1: "perf"
    case 2: "ring"
    default: "\(mode)"
    }
}

struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Build, show and remove the lab: the seed's three-node VXLAN cluster in network namespaces.",
        subcommands: [Up.self, Down.self, Status.self, Exec.self, Bench.self, Soak.self])
}

extension LabCommand {
    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the lab's namespaces, load and attach the datapath on every node and fill its maps.",
            discussion: """
                Nodes control-plane, worker and worker2 (eth0 172.18.0.2-4/16 on bridge br0 of the underlay \
                namespace, pod CIDRs 10.0.0-2.0/24, cilium_vxlan on UDP 8472) with --pods pods each. Everything \
                lives in namespaces named <lab>-*; programs and maps are pinned under /sys/fs/bpf/vxmon/<lab>, \
                state is kept in /run/vxmon/<lab>/lab.json. Leftovers of a crashed lab are cleaned first.
                """)

        @OptionGroup var labOptions: LabOptions

        @Option(help: "Pods per node.")
        var pods = 2

        @Option(help: "The BPF object to load (default: $VXMON_BPF_OBJECT, else next to vxmon, else bpf/.output).")
        var bpfObject: String?

        @Flag(
            help: """
                Also trace VXLAN packets arriving on the nodes' eth0 (from-network), as Cilium does where \
                bpf_host is attached to the native device. Off by default: one more event per packet.
                """)
        var traceUnderlay = false

        @Flag(name: .shortAndLong, help: "Show every step and libbpf's debug log.")
        var verbose = false

        @Flag(help: "Do not start the lab's agent (monitors then read the buffers directly, one at a time).")
        var noAgent = false

        @Flag(help: "Do not start the Hubble observer servers (vxmon-hubble; they need the agent).")
        var noHubble = false

        @Option(help: ArgumentHelp("TLS for the Hubble servers: their certificate (vxmon-hubble --tls-cert-file).", valueName: "file"))
        var hubbleTlsCertFile: String?

        @Option(help: ArgumentHelp("The Hubble certificate's key (vxmon-hubble --tls-key-file).", valueName: "file"))
        var hubbleTlsKeyFile: String?

        @Option(help: ArgumentHelp("The Hubble clients' CAs: mutual TLS (vxmon-hubble --tls-client-ca-files).", valueName: "files"))
        var hubbleTlsClientCaFiles: [String] = []

        @Flag(help: "Hubble TLS without client certificates (vxmon-hubble --tls-no-client-auth).")
        var hubbleTlsNoClientAuth = false

        @Flag(help: "Hubble servers in plaintext, explicitly (vxmon-hubble --disable-tls).")
        var hubbleDisableTls = false

        @Option(
            help: ArgumentHelp(
                "The agent serves Prometheus metrics on http://ADDRESS/metrics, e.g. 127.0.0.1:9965 (vxmon agent --metrics; kept when the agent is started again).",
                valueName: "address"))
        var metrics: String?

        @Flag(
            help: "With --metrics, the agent also builds every packet's journey for the vxmon_journey_hop_latency_seconds histograms (vxmon agent --metrics-journeys: more CPU per event).")
        var metricsJourneys = false

        /// vxmon-hubble's TLS flags; none given: a restart keeps what it was started with.
        var hubbleTLS: HubbleTLSFlags {
            HubbleTLSFlags(
                certFile: hubbleTlsCertFile, keyFile: hubbleTlsKeyFile, clientCAFiles: hubbleTlsClientCaFiles,
                noClientAuth: hubbleTlsNoClientAuth, disable: hubbleDisableTls)
        }

        func validate() throws {
            if !(1...200).contains(pods) { throw ValidationError("--pods must be between 1 and 200") }
            if let problem = hubbleTLS.problem(prefix: "hubble-") { throw ValidationError(problem) }
            if let metrics, case .failure(let problem) = MetricsAddress.parse(metrics) {
                throw ValidationError("--metrics \(sanitizedArgument(metrics)): \(problem)")
            }
            if metrics != nil && noAgent { throw ValidationError("--metrics is served by the agent, which --no-agent does not start") }
            if metricsJourneys && metrics == nil { throw ValidationError("--metrics-journeys needs --metrics") }
            if !hubbleTLS.isEmpty && (noHubble || noAgent) {
                throw ValidationError("--hubble-tls-* and --hubble-disable-tls are for the Hubble servers, which "
                    + (noHubble ? "--no-hubble" : "--no-agent") + " does not start")
            }
        }

        /// Starts the lab's agent (the one reader, serving every client).
        func startAgent(_ lab: Lab) throws -> (pid: Int32, started: Bool) {
            guard let exe = Preflight.executablePath else { throw CLIError("cannot find the vxmon executable") }
            let recorded = (try? FileSystem.read(lab.paths.agentArguments))?.split(separator: "\n").map(String.init)
            var arguments: [String]?
            if let metrics {
                // The options it had, with this metrics address (agent.args keeps it for restarts).
                arguments =
                    Self.withoutOption("--metrics", recorded ?? []).filter { $0 != "--metrics-journeys" } + ["--metrics", metrics]
                    + (metricsJourneys ? ["--metrics-journeys"] : [])
            }
            let (pid, started) = try AgentDaemon.start(lab: lab.name, executable: exe, arguments: arguments)
            if !started, let metrics,
                Self.optionValue("--metrics", recorded ?? []) != metrics
                    || (recorded ?? []).contains("--metrics-journeys") != metricsJourneys
            {
                EventPipeline.standardError(
                    "vxmon: the agent already runs (pid \(pid)) without --metrics \(sanitizedArgument(metrics))"
                        + (metricsJourneys ? " --metrics-journeys" : "") + "; it applies when the "
                        + "agent starts: `vxmon lab down` and `vxmon lab up` with it")
            }
            return (pid, started)
        }

        /// `arguments` without `option` and its value.
        static func withoutOption(_ option: String, _ arguments: [String]) -> [String] {
            var result: [String] = []
            var skip = false
            for a in arguments {
                if skip {
                    skip = false
                    continue
                }
                if a == option {
                    skip = true
                    continue
                }
                result.append(a)
            }
            return result
        }

        /// The value given to `option` in `arguments`.
        static func optionValue(_ option: String, _ arguments: [String]) -> String? {
            guard let i = arguments.firstIndex(of: option), i + 1 < arguments.count else { return nil }
            return arguments[i + 1]
        }

        /// Starts the lab's Hubble observer servers (a client of the agent), if vxmon-hubble was built.
        func startHubble(_ lab: Lab, _ topology: LabTopology) {
            guard let exe = HubbleDaemon.executable else {
                EventPipeline.standardError(HubbleDaemon.notBuiltMessage)
                return
            }
            do {
                let flags = hubbleTLS
                let (pid, started) = try HubbleDaemon.start(
                    lab: lab.name, executable: exe, arguments: flags.isEmpty ? nil : flags.arguments)
                if !started && !flags.isEmpty && flags.arguments != HubbleDaemon.recordedArguments(lab.paths) {
                    EventPipeline.standardError(
                        "vxmon: the Hubble observers already run (pid \(pid)) with other settings; the TLS flags given "
                            + "apply when they start: `vxmon lab down` and `vxmon lab up` with them")
                }
                let control = topology.nodes.first { $0.name == "control-plane" } ?? topology.nodes[0]
                let tls = HubbleDaemon.recordedArguments(lab.paths).contains("--tls-cert-file") ? " (TLS)" : ""
                print(
                    "hubble observers running\(tls) (pid \(pid)): "
                        + topology.nodes.map { "\($0.name) \($0.ip):4244" }.joined(separator: ", ")
                        + "; peer service \(control.ip):4244")
            } catch {
                EventPipeline.standardError("vxmon: \(error)")
            }
        }

        func run() throws {
            try Preflight.requirePrivileged("lab up")
            let object = try Preflight.locateObject(explicit: bpfObject)
            let lab = try labOptions.open()
            if !verbose { lab.log = { _ in } }
            Libbpf.routeLogs(debug: verbose)
            // A lab that is up with a dead agent: restart the agent, nothing else.
            if case .up = lab.state(), !noAgent, AgentStatus.runningAgent(lab.paths) == nil,
                MonitorLock.holder(paths: lab.paths) == nil
            {
                let (pid, _) = try startAgent(lab)
                print("lab '\(lab.name)' is up; its agent was not running: restarted (pid \(pid))")
                if !noHubble, let topology = lab.recordedTopology() { startHubble(lab, topology) }
                return
            }
            // Up, with its agent, but the observers died: start them, nothing else.
            if case .up(let topology) = lab.state(), !noHubble, AgentStatus.runningAgent(lab.paths) != nil,
                HubbleDaemon.running(lab.paths) == nil
            {
                guard HubbleDaemon.executable != nil else {
                    print("lab '\(lab.name)' is up, with its agent")
                    EventPipeline.standardError(HubbleDaemon.notBuiltMessage)
                    return
                }
                print("lab '\(lab.name)' is up; its Hubble observers were not running")
                startHubble(lab, topology)
                return
            }
            let topology = try lab.up(podsPerNode: pods, objectPath: object, traceUnderlay: traceUnderlay)
            if !noAgent {
                do {
                    let (pid, _) = try startAgent(lab)
                    print("agent of lab '\(lab.name)' running (pid \(pid)): \(lab.paths.agentSocket)")
                    if let metrics, case .success(let address) = MetricsAddress.parse(metrics) {
                        print("metrics: http://\(address.text)/metrics")
                    }
                } catch {
                    EventPipeline.standardError("vxmon: \(error); monitors read the buffers directly")
                }
                if !noHubble { startHubble(lab, topology) }
            }
            let a = topology.pods.first { $0.node == "worker2" } ?? topology.pods[0]
            let b = topology.pods.first { $0.node == "worker" } ?? topology.pods[0]
            let flag = lab.name == Lab.defaultName ? "" : " --lab \(lab.name)"
            print(
                """
                lab '\(lab.name)' is up: \(topology.nodes.count) nodes, \(topology.pods.count) pods (\(object))
                  vxmon lab status\(flag)
                  vxmon -vv\(flag)                                    # in another terminal
                  vxmon lab exec\(flag) \(a.name) -- ping -c 3 \(b.ip)   # \(a.name) -> \(b.name)
                  vxmon lab down\(flag)
                """)
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the lab's namespaces, pins and state (also what a crashed lab left behind).")

        @OptionGroup var labOptions: LabOptions

        func run() throws {
            try Preflight.requirePrivileged("lab down")
            let lab = try labOptions.open()
            let removed = try lab.down()
            if removed.isEmpty {
                print("lab '\(lab.name)' is not up; nothing to remove")
            } else {
                let namespaces = removed.filter { $0.hasPrefix("netns ") }.count
                print("lab '\(lab.name)' is down: removed \(namespaces) namespaces, its pins and its state")
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the lab's nodes, pods, datapath attachments and event state.")

        @OptionGroup var labOptions: LabOptions

        func run() throws {
            let lab = try labOptions.open()
            switch lab.state() {
            case .down:
                print("lab '\(lab.name)': down")
                return
            case .stale(let items):
                print("lab '\(lab.name)': incomplete (run `vxmon lab down` to clean): \(items.joined(separator: ", "))")
                throw ExitCode.failure
            case .up(let topology):
                try Preflight.requireRoot("lab status")
                show(lab, topology)
            }
        }

        func showAgent(_ paths: LabPaths, running: Int32?) {
            for line in LabCommand.agentLines(paths, running: running) { print(line) }
        }

        func show(_ lab: Lab, _ topology: LabTopology) {
            let paths = lab.paths
            let agent = AgentStatus.runningAgent(paths)
            let reader = MonitorLock.holder(paths: paths)
            let monitor = agent != nil ? "the agent" : reader.map { "attached (pid \($0))" } ?? "none"
            print("lab '\(lab.name)': up; state \(paths.stateFile); pins \(paths.pinDirectory); reader: \(monitor)")
            showAgent(paths, running: agent)
            for line in LabCommand.hubbleLines(paths, topology, agent: agent) { print(line) }
            print("")
            var nodes = Table(["NODE", "NETNS", "ETH0", "POD CIDR", "VXLAN", "EVENTS", "CAPTURE"])
            for node in topology.nodes {
                let config = (try? NodeMaps(paths: paths, node: node.name))?.readConfig()
                let events = config.map { eventsModeName($0.events_mode) } ?? "?"
                nodes.add([
                    node.name, node.namespace, "\(node.ip)/\(node.prefixLength)", node.podCIDR,
                    config.map { "\(LabTopology.vxlanDevice) (ifindex \($0.vxlan_ifindex), udp \(topology.vxlanPort))" }
                        ?? "?",
                    events, config.map { "\($0.cap_len)/\($0.cap_len_overlay) bytes" } ?? "?",
                ])
            }
            print(nodes.render(), terminator: "")
            let eventsOn = topology.nodes.contains {
                ((try? NodeMaps(paths: paths, node: $0.name))?.eventsMode ?? 0) != 0
            }
            if eventsOn && MonitorLock.holder(paths: paths) == nil {
                print("note: events are on but no monitor is attached (one was killed); the next monitor resets them")
            }
            if let agent, eventsOn, AgentStatus.read(paths)?.clients.isEmpty == true {
                print("note: events are on but the agent (pid \(agent)) has no client")
            }
            print("")
            var pods = Table(["POD", "NODE", "IP", "MAC", "LXC", "LXC MAC", "IDENTITY", "ENDPOINT"])
            for pod in topology.pods {
                pods.add([
                    pod.name, pod.node, pod.ip, pod.mac, pod.lxc, pod.lxcMAC, "\(pod.identity)", "\(pod.endpointID)",
                ])
            }
            print(pods.render(), terminator: "")
            print("")
            var attachments = Table(["NODE", "DEVICE", "TC INGRESS PROGRAM", "STATUS"])
            for a in lab.attachments(topology) {
                let status: String
                if a.isHealthy {
                    status = "attached (prog id \(a.attachedID!))"
                } else if let id = a.attachedID {
                    status = "prog id \(id) is not vxmon's pinned program"
                } else {
                    status = "NOT ATTACHED"
                }
                attachments.add([a.node, a.interface, a.program, status])
            }
            print(attachments.render(), terminator: "")
        }
    }

    /// The Hubble observers' line, from what they do rather than what was said of them: the process
    /// (its pid file, checked against the process), whether every node's server answers (a TCP
    /// connection to it inside the node's namespace, and in plaintext the server's HTTP/2 SETTINGS,
    /// which it sends first: a stopped or wedged process accepts connections but says nothing), and
    /// whether it is a client of the agent (else it serves no new flows).
    static func hubbleLines(_ paths: LabPaths, _ topology: LabTopology, agent: Int32?) -> [String] {
        guard let pid = HubbleDaemon.running(paths) else {
            if HubbleDaemon.executable == nil { return ["hubble: not built (make hubble)"] }
            // Every start records its arguments: the observers were started and are gone.
            if access(paths.hubbleArguments, F_OK) == 0 {
                if agent != nil {
                    return [
                        "hubble: not running; restarting (the agent starts it again \(HubbleKeeper.graceSeconds) s after it "
                            + "stopped; log \(paths.hubbleLog))"
                    ]
                }
                return ["hubble: DEAD (no agent to restart it; `vxmon lab up` restarts both; log \(paths.hubbleLog))"]
            }
            return ["hubble: not running (`vxmon lab up` starts it)"]
        }
        let words = ((try? FileSystem.read("/proc/\(pid)/cmdline")) ?? "").split(separator: "\0").map(String.init)
        let port = words.firstIndex(of: "--port").flatMap { $0 + 1 < words.count ? UInt16(words[$0 + 1]) : nil } ?? 4244
        let tls = words.contains("--tls-cert-file")
        var silent: [String] = []
        for node in topology.nodes {
            let problem = probeObserver(namespace: node.namespace, ip: node.ip, port: port, greeting: !tls)
            if let problem { silent.append("\(node.name) \(node.ip):\(port) \(problem)") }
        }
        let fed = AgentStatus.read(paths)?.clients.contains { $0.pid == pid } == true
        let served = "\(topology.nodes.count) nodes on <node ip>:\(port)\(tls ? " (TLS)" : "")"
        var line = "hubble: pid \(pid), "
        if silent.isEmpty {
            line += "serving \(served)"
        } else {
            line += "NOT SERVING: \(silent.joined(separator: "; "))"
        }
        line += fed ? "; fed by the agent" : agent == nil ? "; NO AGENT: no new flows" : "; NOT a client of the agent: no new flows"
        return [line + " (log \(paths.hubbleLog))"]
    }

    /// nil when the observer at `ip:port` in `namespace` answers: accepts a TCP connection within a
    /// second and, with `greeting` (plaintext), sends its HTTP/2 SETTINGS frame within another; else
    /// what it did.
    static func probeObserver(namespace: String, ip: String, port: UInt16, greeting: Bool) -> String? {
        do {
            return try NetworkNamespace.run(in: namespace) { () -> String? in
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                guard inet_pton(AF_INET, ip, &address.sin_addr) == 1 else { return "(not an IPv4 address)" }
                // SOCK_STREAM (1) | SOCK_CLOEXEC | SOCK_NONBLOCK, by number as elsewhere.
                let fd = socket(AF_INET, 1 | Int32(O_CLOEXEC) | Int32(O_NONBLOCK), 0)
                if fd < 0 { return "(socket: \(errnoString(errno)))" }
                defer { close(fd) }
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if rc != 0 && errno != EINPROGRESS { return "(connect: \(errnoString(errno)))" }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, 1000) != 1 { return "(no connection within 1 s)" }
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                if code != 0 { return "(connect: \(errnoString(code)))" }
                guard greeting else { return nil }
                // The server's connection preface: a frame header whose type (byte 3) is SETTINGS (4).
                var header = [UInt8](repeating: 0, count: 9)
                var got = 0
                let deadline = monotonicNanoseconds() &+ 1_000_000_000
                while got < 9 {
                    let left = Int32(clamping: (deadline &- min(deadline, monotonicNanoseconds())) / 1_000_000)
                    var r = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if left <= 0 || poll(&r, 1, left) != 1 { return "(connected, but no HTTP/2 answer within 1 s)" }
                    let n = header.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, 9 - got) }
                    if n <= 0 { return "(connected, then closed without an HTTP/2 answer)" }
                    got += n
                }
                return header[3] == 4 ? nil : "(answered, but not with HTTP/2 SETTINGS)"
            }
        } catch {
            return "(\(error))"
        }
    }

    /// The agent's line and its clients.
    static func agentLines(_ paths: LabPaths, running: Int32?) -> [String] {
        guard let pid = running else {
            if access(paths.agentPIDFile, F_OK) == 0 {
                return ["agent: DEAD (pid file \(paths.agentPIDFile) left; `vxmon lab up` restarts it)"]
            }
            return ["agent: not running (`vxmon lab up` starts it)"]
        }
        guard let status = AgentStatus.read(paths) else { return ["agent: pid \(pid), starting"] }
        let now = wallClockNanoseconds()
        func age(_ since: UInt64) -> String {
            let s = since < now ? (now - since) / 1_000_000_000 : 0
            return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
        }
        var lines = [
            "agent: pid \(pid), up \(age(status.started)), \(status.events) events read, \(status.lost) lost, "
                + "\(status.clients.count) clients; sockets \(paths.agentSocket), \(paths.stateDirectory)/<node>/monitor1_2.sock"
        ]
        for c in status.clients {
            // The socket: the lab stream, or a node's Cilium socket ("cilium:<node>").
            let socket =
                c.kind.hasPrefix("cilium:") ? "\(sanitizedArgument(String(c.kind.dropFirst(7))))/monitor1_2.sock" : "vxmon.sock"
            lines.append(
                "  client \(c.program.label) pid \(c.pid) on \(socket): connected \(age(c.since)), \(c.sent) events sent, "
                    + "\(c.lost) lost")
        }
        return lines
    }

    struct Exec: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a command inside a pod's (or node's) network namespace.",
            discussion: """
                TARGET is a pod (worker2-pod1), a node (worker), `underlay`, or a pod IP. Example: \
                vxmon lab exec worker2-pod1 -- ping -c 3 10.0.1.10
                """)

        @OptionGroup var labOptions: LabOptions

        @Argument(help: "The pod, node or `underlay` to run in.")
        var target: String

        @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (default: a shell).")
        var command: [String] = []

        func run() throws {
            try Preflight.requireRoot("lab exec")
            let lab = try labOptions.open()
            let topology = try lab.requireUp()
            let namespace: String
            if let pod = topology.pod(target) {
                namespace = pod.namespace
            } else if let node = topology.node(named: target) {
                namespace = node.namespace
            } else if target == "underlay" {
                namespace = topology.underlayNamespace
            } else if topology.namespaces.contains(target) {
                namespace = target
            } else {
                // Neither a node nor the underlay: report it as an unknown pod.
                namespace = try topology.requirePod(target).namespace
            }
            var arguments = command
            if arguments.first == "--" { arguments.removeFirst() }
            if arguments.isEmpty { arguments = [getenv("SHELL").map { String(cString: $0) } ?? "/bin/sh"] }
            // setns on this thread, then exec: the command runs in the namespace and keeps bpffs visible
            // (unlike `ip netns exec`, which remounts /sys).
            try NetworkNamespace.enter(namespace)
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            argv.append(nil)
            execvp(arguments[0], argv)
            throw CLIError("cannot run \(arguments[0]): \(String(cString: strerror(errno)))")
        }
    }
}
