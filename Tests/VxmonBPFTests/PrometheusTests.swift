import Foundation
import Testing
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

/// A real Prometheus server (Debian's /usr/bin/prometheus, 2.42 here) scraping a lab agent's /metrics
/// every second, asked through its HTTP API (Tests/scripts/prometheus_api.py). Oracles: Prometheus's own
/// parsing (it asks for OpenMetrics) and PromQL, ping's counts, the same run's recording read by the
/// independent .vxrec reader (Tests/scripts/vxrec_events.py, written from the spec), promtool (on the
/// text format), and the dashboard's JSON read by Python's json.
@Suite("Prometheus scrapes a lab's agent (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct PrometheusTests {
    static let scripts = GoOracle.packageRoot + "/Tests/scripts"
    static let dashboard = GoOracle.packageRoot + "/docs/grafana-dashboard.json"

    /// The values Grafana gives the dashboard's variables, as it would for "All" over the test's time range.
    static let grafanaVariables = ["__rate_interval=1m", "__range=5m", "instance=.*", "node=.*"]

    @Test("Prometheus scrapes lab up --metrics: N cross-node pings are 8N FORWARDED flows and a policy-denied ping a drop, as ping and the run's recording say; the hop latency histograms are the recording's event times; promtool accepts a scrape; every query of docs/grafana-dashboard.json returns series")
    func prometheusScrapesTheAgent() throws {
        try LabGate.check()
        try #require(Shell.hasTool("prometheus") && Shell.hasTool("promtool"), "prometheus not installed (scripts/setup.sh)")
        try #require(
            FileManager.default.fileExists(atPath: Self.scripts + "/vxrec_events.py"),
            "Tests/scripts/vxrec_events.py (the independent recording reader) is missing")
        let lab = LabNames.make("pr")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-prometheus-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var prometheus: PrometheusServer?
        var recorder: Process?
        defer {
            prometheus?.stop()
            if let recorder, recorder.isRunning {
                recorder.terminate()
                recorder.waitUntilExit()
            }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }

        let metricsPort = try MetricsLabTests.freePort()
        var webPort = try MetricsLabTests.freePort()
        while webPort == metricsPort { webPort = try MetricsLabTests.freePort() }
        // Journeys on, for the hop latency histograms.
        let up = try Shell.run(
            [FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-hubble", "--metrics", "127.0.0.1:\(metricsPort)", "--metrics-journeys"],
            check: false)
        try #require(up.status == 0, "\(up.output) \(up.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        let a = try #require(topology.pods.first { $0.node == "worker2" })
        let b = try #require(topology.pods.first { $0.node == "worker" })

        // Prometheus with the README's scrape config, pointed at this lab's agent.
        let readme = try ReadmeMetrics.read()
        let p = try PrometheusServer(
            scrapeConfigs: readme.scrapeConfigs.replacingOccurrences(of: ReadmeMetrics.address, with: "127.0.0.1:\(metricsPort)"),
            web: webPort, dir: dir)
        prometheus = p
        // The same run recorded by a client of the agent (stopped after the dashboard's queries: its
        // client series exist while it is connected).
        let recording = dir + "/run.vxrec"
        recorder = try LabAgentTests.vxmon(
            ["record", "--lab", lab, "-w", recording, "--duration", "120"], stderr: dir + "/record.err")
        try #require(LabAgentTests.waitFor(10) { (AgentStatus.read(paths)?.clients.count ?? 0) >= 1 }, "the recorder connected")
        try p.waitUp()
        try p.waitScrapes(2)

        let forwarded = "sum(hubble_flows_processed_total{verdict=\"FORWARDED\"})"
        let drops = "sum(hubble_drop_total)"
        let before = (forwarded: try p.value(forwarded), drops: try p.value(drops), flows: try p.value("sum(hubble_flows_processed_total)"))
        let histogramBefore = try p.histogram(Self.hopLatency)

        // N cross-node pings (identifier 4101): 4 forwarded traces per packet (from-endpoint and
        // to-overlay on one node, from-overlay and to-endpoint on the other), 8N in all.
        let n = 5
        let ping = try inNamespace(a.namespace, ["ping", "-e", "4101", "-c", "\(n)", "-i", "0.2", "-W", "1", b.ip])
        let (sent, received) = try #require(MetricsLabTests.pingCounts(ping.output), "\(ping.output)")
        #expect(sent == n && received == n, "\(ping.output)")
        let expectedForwarded = Double(4 * sent + 4 * received)
        let afterPings = try p.settled(forwarded, atLeast: before.forwarded + expectedForwarded)
        #expect(afterPings - before.forwarded == expectedForwarded, "8N FORWARDED flows for N=\(n)")
        #expect(try p.value(drops) == before.drops, "no drop yet")
        // Each packet's 4 hops are 3 hop latencies, one of them across nodes.
        let hopDelta = try p.histogram(Self.hopLatency).minus(histogramBefore)
        let hopCount = hopDelta.counts
        #expect(hopCount.values.reduce(0, +) == Double(3 * (sent + received)), "\(hopCount)")
        #expect(hopCount.filter { $0.key["cross_node"] == "true" }.values.reduce(0, +) == Double(sent + received), "\(hopCount)")

        // The same pod pair, now denied (identifier 4102): 3 forwarded traces up to worker's overlay,
        // then a drop on worker.
        let deny = try Shell.run(
            [FaultTests.vxmon, "policy", "add", "--lab", lab, "--from", a.name, "--to", b.name, "--proto", "icmp", "--deny"],
            check: false)
        try #require(deny.status == 0, "\(deny.output) \(deny.errorOutput)")
        let denied = try inNamespace(a.namespace, ["ping", "-e", "4102", "-c", "2", "-i", "0.3", "-W", "1", b.ip])
        let (deniedSent, deniedReceived) = try #require(MetricsLabTests.pingCounts(denied.output), "\(denied.output)")
        #expect(deniedSent == 2 && deniedReceived == 0, "\(denied.output)")
        let afterDrop = try p.settled(drops, atLeast: before.drops + Double(deniedSent))
        #expect(afterDrop - before.drops == Double(deniedSent))
        let dropSeries = try p.query("hubble_drop_total")
        #expect(dropSeries.count == 1, "\(dropSeries)")
        #expect(
            dropSeries.first.map { $0.labels.filter { !["instance", "job"].contains($0.key) } }
                == ["__name__": "hubble_drop_total", "node": "worker", "protocol": "ICMPv4", "reason": "Policy denied"],
            "\(dropSeries)")
        let forwardedAfterDrop = try p.value(forwarded)
        #expect(forwardedAfterDrop - afterPings == Double(3 * deniedSent), "3 forwarded traces per denied request")

        // A refused TCP connection (SYN, then RST from the closed port), so the TCP families have series.
        let connect = try inNamespace(
            a.namespace,
            ["python3", "-c", "import socket, sys\ntry: socket.create_connection((sys.argv[1], 7), 2)\nexcept ConnectionRefusedError: print('refused')", b.ip])
        #expect(connect.output.contains("refused"), "\(connect.output) \(connect.errorOutput)")
        try p.waitScrapes(2)

        // promtool on a real scrape in the text format (Prometheus itself took OpenMetrics: its
        // target stayed up with no error).
        let scrape = dir + "/scrape.txt"
        let saved = try Shell.run(
            ["python3", "-c", "import sys, urllib.request\nopen(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1]).read())",
             "http://127.0.0.1:\(metricsPort)/metrics", scrape], check: false)
        try #require(saved.status == 0, "\(saved.errorOutput)")
        let lint = try Shell.run(["sh", "-c", "promtool check metrics < '\(scrape)'"], check: false)
        #expect(lint.status == 0 && lint.output.isEmpty && lint.errorOutput.isEmpty, "promtool: \(lint.output) \(lint.errorOutput)")
        let target = try p.waitUp()
        #expect(target["health"] as? String == "up" && target["lastError"] as? String == "", "\(target)")

        // The dashboard: every panel's query returns series on this Prometheus, every metric it names
        // is one Prometheus learnt from the scrape, counters go through rate/increase.
        let report = try p.checkDashboard(Self.dashboard, variables: Self.grafanaVariables)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.panels >= 10 && report.queries.count >= report.panels)
        for q in report.queries {
            #expect(q.error == nil && q.series >= 1, "\(q.panel) \(q.refId): \(q.expr): \(q.series) series, \(q.error ?? "")")
        }
        // The README's example queries return series too.
        #expect(readme.queries.count >= 5)
        for expr in readme.queries {
            let series = try p.query(expr)
            #expect(series.count >= 1, "README query \(expr): no series")
        }
        #expect(Set(report.variables["node"] ?? []).isSuperset(of: ["worker", "worker2"]), "\(report.variables)")
        #expect(report.variables["instance"] == ["127.0.0.1:\(metricsPort)"], "\(report.variables)")
        // The checker can fail: a misspelt metric, a counter read raw, a gauge through rate().
        let bad = dir + "/bad-dashboard.json"
        try Self.badDashboard().write(to: URL(fileURLWithPath: bad))
        let badReport = try p.checkDashboard(bad, variables: [])
        #expect(badReport.problems.count == 3, "\(badReport.problems)")
        #expect(badReport.queries.first?.series == 0, "\(badReport.queries)")

        // The recording: the same events, by the independent reader.
        let totalForwarded = try p.value(forwarded), totalDrops = try p.value(drops), totalFlows = try p.value("sum(hubble_flows_processed_total)")
        recorder?.terminate()
        recorder?.waitUntilExit()
        let events = try Self.recordedEvents(recording)
        #expect(events.lostSamples == 0 && !events.truncated)
        func count(id: Int, type: Int) -> Int {
            events.samples.filter { $0.type == type && $0.icmpID == id && $0.between(a.ip, b.ip) }.count
        }
        #expect(count(id: 4101, type: 4) == 4 * sent + 4 * received, "\(events.icmpIDs)")
        // The ping phase's hop latency histograms, recomputed from the recording's event times: each
        // packet's traces in time order, the difference of consecutive ones counted under every
        // bucket bound Prometheus has.
        let recomputed = Self.hopLatencies(events.samples.filter { $0.type == 4 && $0.icmpID == 4101 })
        #expect(!hopDelta.buckets.isEmpty)
        for (labels, count) in hopDelta.counts {
            let mine = recomputed.filter { $0.labels == labels }
            #expect(Double(mine.count) == count, "\(labels): \(count) observed, \(mine.count) in the recording")
            let sum = mine.reduce(0.0) { $0 + $1.seconds }
            #expect(abs((hopDelta.sums[labels] ?? .nan) - sum) <= 1e-9, "\(labels): sum \(hopDelta.sums[labels] ?? .nan), recording \(sum)")
        }
        #expect(Set(hopDelta.counts.keys) == Set(recomputed.map(\.labels)), "\(hopDelta.counts.keys)")
        for (key, value) in hopDelta.buckets {
            let expected = recomputed.filter { $0.labels == key.labels && $0.seconds <= key.le }.count
            #expect(value == Double(expected), "\(key.labels) le=\(key.le): \(value), recording \(expected)")
        }
        #expect(count(id: 4101, type: 1) == 0)
        #expect(count(id: 4102, type: 4) == 3 * deniedSent, "\(events.icmpIDs)")
        let dropEvents = events.samples.filter { $0.type == 1 }
        #expect(dropEvents.count == deniedSent && dropEvents.allSatisfy { $0.icmpID == 4102 && $0.dropReason == 133 && $0.node == "worker" })
        // Over the whole run: Prometheus's deltas are the recording's traces (FORWARDED), drops, and
        // every flow (the lab emits traces and drops only).
        let traces = events.samples.filter { $0.type == 4 }.count
        #expect(Set(events.samples.map(\.type)).isSubset(of: [1, 4]), "\(Set(events.samples.map(\.type)))")
        #expect(totalForwarded - before.forwarded == Double(traces), "Prometheus and the recording saw the same traces")
        #expect(totalDrops - before.drops == Double(dropEvents.count))
        #expect(totalFlows - before.flows == Double(events.samples.count))
        print(
            "prometheus: \(Int(afterPings - before.forwarded)) forwarded flows for \(n) pings, \(Int(afterDrop - before.drops)) drops, "
                + "\(Int(hopCount.values.reduce(0, +))) hop latencies in \(hopDelta.buckets.count) buckets; recording: \(traces) traces, "
                + "\(dropEvents.count) drops, \(recomputed.count) hop latencies; dashboard: \(report.panels) panels, \(report.queries.count) queries")
    }

    /// A dashboard with three mistakes the checker must find.
    static func badDashboard() -> Data {
        let board: [String: Any] = [
            "schemaVersion": 38,
            "panels": [
                [
                    "id": 1, "type": "timeseries", "title": "bad", "datasource": ["type": "prometheus", "uid": "x"],
                    "gridPos": ["x": 0, "y": 0, "w": 12, "h": 8],
                    "targets": [
                        ["refId": "A", "expr": "sum(rate(hubble_flow_processed_total[1m]))"],
                        ["refId": "B", "expr": "sum by (node) (hubble_drop_total)"],
                        ["refId": "C", "expr": "rate(vxmon_agent_clients[1m])"],
                    ],
                ]
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: board)) ?? Data()
    }

    struct RecordedEvent {
        var type: Int
        var node: String?
        var time: UInt64
        var point: String?
        var dropReason: Int?
        var source: String?
        var destination: String?
        var icmpID: Int?
        var icmpType: Int?
        var icmpSeq: Int?

        func between(_ x: String, _ y: String) -> Bool {
            (source == x && destination == y) || (source == y && destination == x)
        }
    }

    static let hopLatency = "vxmon_journey_hop_latency_seconds"

    /// The hop latencies of ICMP echo packets' traces: per packet (ICMP type and sequence), its events
    /// in time order, each difference labelled as the histogram's series are.
    static func hopLatencies(_ traces: [RecordedEvent]) -> [(labels: [String: String], seconds: Double)] {
        var packets: [String: [RecordedEvent]] = [:]
        for e in traces { packets["\(e.icmpType ?? -1)/\(e.icmpSeq ?? -1)", default: []].append(e) }
        var result: [(labels: [String: String], seconds: Double)] = []
        for hops in packets.values {
            let sorted = hops.sorted { $0.time < $1.time }
            for (from, to) in zip(sorted, sorted.dropFirst()) {
                result.append(
                    (["cross_node": from.node == to.node ? "false" : "true", "from_point": from.point ?? "", "to_point": to.point ?? ""],
                     Double(to.time - from.time) / 1e9))
            }
        }
        return result
    }

    /// A recording's samples as the independent reader sees them.
    static func recordedEvents(_ path: String) throws -> (samples: [RecordedEvent], lostSamples: Int, truncated: Bool, icmpIDs: [Int: Int]) {
        let r = try Shell.run(["python3", scripts + "/vxrec_events.py", path], check: false)
        try #require(r.status == 0, "\(r.errorOutput)")
        var samples: [RecordedEvent] = []
        var summary: [String: Any] = [:]
        for line in r.output.split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            guard object["index"] != nil else {
                summary = object
                continue
            }
            let key = object["key"] as? [String: Any]
            samples.append(
                RecordedEvent(
                    type: object["type"] as? Int ?? -1, node: object["node"] as? String,
                    time: (object["time_ns"] as? NSNumber)?.uint64Value ?? 0, point: object["point"] as? String,
                    dropReason: object["drop_reason"] as? Int, source: key?["source"] as? String,
                    destination: key?["destination"] as? String, icmpID: key?["icmp_id"] as? Int,
                    icmpType: key?["icmp_type"] as? Int, icmpSeq: key?["icmp_seq"] as? Int))
        }
        var ids: [Int: Int] = [:]
        for s in samples { if let id = s.icmpID { ids[id, default: 0] += 1 } }
        return (samples, summary["lost_samples"] as? Int ?? -1, summary["truncated"] as? Bool ?? true, ids)
    }
}

/// A Prometheus server of the test's own: a generated config scraping one target every second, its
/// TSDB in the test's directory, its web API on a loopback port; stopped (SIGTERM, then SIGKILL) by
/// `stop()` or when released.
final class PrometheusServer {
    let url: String
    private let process: ChildProcess
    private let log: String

    /// `scrapeConfigs`: the config's `scrape_configs:` part (every target scraped every second).
    init(scrapeConfigs: String, web port: UInt16, dir: String) throws {
        url = "http://127.0.0.1:\(port)"
        log = dir + "/prometheus.log"
        let config = dir + "/prometheus.yml"
        try """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s

            """.appending(scrapeConfigs).write(toFile: config, atomically: true, encoding: .utf8)
        process = try Shell.spawn(
            ["prometheus", "--config.file=\(config)", "--storage.tsdb.path=\(dir)/tsdb",
             "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn"],
            quiet: true, errorFile: log)
    }

    deinit { stop() }

    func stop() { process.stop(SIGTERM, timeout: 5) }

    private var logTail: String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return String(text.suffix(2000))
    }

    /// prometheus_api.py's JSON answer.
    private func api(_ arguments: [String]) throws -> Any {
        let r = try Shell.run(["python3", PrometheusTests.scripts + "/prometheus_api.py"] + arguments, check: false)
        try #require(r.status == 0, "prometheus_api.py \(arguments.first ?? ""): \(r.errorOutput) prometheus log: \(logTail)")
        return try JSONSerialization.jsonObject(with: Data(r.output.utf8), options: .fragmentsAllowed)
    }

    /// Waits until the target is up (its last scrape without error); returns the target.
    @discardableResult
    func waitUp() throws -> [String: Any] {
        try #require(!process.hasExited, "prometheus exited: \(logTail)")
        return try #require(try api(["wait-up", url, "30"]) as? [String: Any])
    }

    /// Waits until `count` scrapes have started from now on (the last one's samples are then stored).
    func waitScrapes(_ count: Int) throws {
        _ = try api(["wait-scrapes", url, String(Date().timeIntervalSince1970), String(count), String(5 * count + 5)])
    }

    /// An instant query's series.
    func query(_ expr: String) throws -> [(labels: [String: String], value: Double)] {
        let object = try #require(try api(["query", url, expr]) as? [String: Any])
        return (object["result"] as? [[String: Any]] ?? []).map {
            (labels: $0["metric"] as? [String: String] ?? [:], value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    /// A query of one series (0 when it has none yet).
    func value(_ expr: String) throws -> Double {
        let series = try query(expr)
        try #require(series.count <= 1, "\(expr): \(series)")
        return series.first?.value ?? 0
    }

    /// `expr` once it reaches `atLeast` (or 10 s have passed), then after two more scrapes: what
    /// came after the events it waited for is in the answer too.
    func settled(_ expr: String, atLeast: Double) throws -> Double {
        _ = LabAgentTests.waitFor(10) { ((try? self.value(expr)) ?? 0) >= atLeast }
        try waitScrapes(2)
        return try value(expr)
    }

    /// A histogram's series as Prometheus has them now, by labels (without instance and job).
    struct Histogram {
        struct BucketKey: Hashable {
            var labels: [String: String]
            var le: Double
        }
        var buckets: [BucketKey: Double] = [:]
        var counts: [[String: String]: Double] = [:]
        var sums: [[String: String]: Double] = [:]

        func minus(_ other: Histogram) -> Histogram {
            Histogram(
                buckets: buckets.merging(other.buckets) { $0 - $1 }, counts: counts.merging(other.counts) { $0 - $1 },
                sums: sums.merging(other.sums) { $0 - $1 })
        }
    }

    func histogram(_ name: String) throws -> Histogram {
        func own(_ labels: [String: String]) -> [String: String] {
            labels.filter { !["__name__", "instance", "job", "le"].contains($0.key) }
        }
        var h = Histogram()
        for s in try query(name + "_bucket") {
            let le = s.labels["le"].flatMap { $0 == "+Inf" ? .infinity : Double($0) } ?? .nan
            h.buckets[Histogram.BucketKey(labels: own(s.labels), le: le)] = s.value
        }
        for s in try query(name + "_count") { h.counts[own(s.labels)] = s.value }
        for s in try query(name + "_sum") { h.sums[own(s.labels)] = s.value }
        return h
    }

    struct DashboardQuery {
        var panel: String
        var refId: String
        var expr: String
        var series: Int
        var error: String?
    }

    /// prometheus_api.py's dashboard report.
    func checkDashboard(_ path: String, variables: [String]) throws
        -> (panels: Int, problems: [String], queries: [DashboardQuery], variables: [String: [String]])
    {
        let object = try #require(try api(["dashboard", url, path] + variables) as? [String: Any])
        let queries = (object["queries"] as? [[String: Any]] ?? []).map {
            DashboardQuery(
                panel: $0["panel"] as? String ?? "", refId: $0["refId"] as? String ?? "", expr: $0["expr"] as? String ?? "",
                series: $0["series"] as? Int ?? 0, error: $0["error"] as? String)
        }
        return (
            object["panels"] as? Int ?? 0, object["problems"] as? [String] ?? ["no report"], queries,
            object["variables"] as? [String: [String]] ?? [:]
        )
    }
}

/// The README's "Metrics" section: its scrape config (the first ```yaml block) and its example
/// queries (the ```promql blocks, one query per line, `#` lines are comments).
struct ReadmeMetrics {
    /// The address the README's scrape config names.
    static let address = "127.0.0.1:9965"
    var scrapeConfigs: String
    var queries: [String]

    static func read() throws -> ReadmeMetrics {
        let text = try String(contentsOfFile: GoOracle.packageRoot + "/README.md", encoding: .utf8)
        let start = try #require(text.range(of: "\n## Metrics\n"), "README has no Metrics section")
        let rest = text[start.upperBound...]
        let section = rest.range(of: "\n## ").map { rest[..<$0.lowerBound] } ?? rest
        var blocks: [(String, String)] = []
        var language: String?
        var body = ""
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if let l = language {
                    blocks.append((l, body))
                    language = nil
                } else {
                    language = String(line.dropFirst(3))
                    body = ""
                }
            } else if language != nil {
                body += line + "\n"
            }
        }
        let yaml = try #require(blocks.first { $0.0 == "yaml" }?.1, "no yaml block in the README's Metrics section")
        try #require(yaml.contains(address), "the README's scrape config does not name \(address)")
        let queries = blocks.filter { $0.0 == "promql" }.flatMap { $0.1.split(separator: "\n") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        return ReadmeMetrics(scrapeConfigs: yaml, queries: queries)
    }
}
