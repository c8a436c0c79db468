import ArgumentParser
import Foundation
import Testing

@testable import VxmonCLI

#if canImport(Glibc)
import Glibc
#endif

// Commands built in-process by `Vxmon.parse`, through ArgumentParser's own parsing, as `vxmon` builds
// them. The filters are read again from the command's words, in order, so `--not` negates the flag
// right after it: what a command keeps is checked against the samples' renderings (samples/<s>.json
// and .txt, checked against Cilium), selected here from the JSON's own fields, and against the built
// binary run on the same words.

/// One event of a sample, as its JSON rendering has it (read with Foundation, not with vxmon).
struct SampleEvent: Sendable {
    var node: String
    /// The keys of `l4`: TCP, UDP, ICMPv4, ...
    var transport: Set<String>
    var sourcePort: Int?
    var destinationPort: Int?
}

/// A sample's renderings: one JSON object and one text line per event, in the same order.
struct SampleRenderings {
    let json: [String]
    let text: [String]
    let events: [SampleEvent]

    init(_ sample: String) throws {
        let base = "\(CLIFixtures.packageRoot)/samples/\(sample)"
        json = try #require(CLIFixtures.text(base + ".json")).split(separator: "\n").map(String.init)
        text = try #require(CLIFixtures.text(base + ".txt")).split(separator: "\n").map(String.init)
        try #require(json.count == text.count)
        events = try json.map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let l4 = object["l4"] as? [String: [String: Any]] ?? [:]
            let ports = l4.values.first
            return SampleEvent(
                node: object["node_name"] as? String ?? "", transport: Set(l4.keys),
                sourcePort: ports?["source_port"] as? Int, destinationPort: ports?["destination_port"] as? Int)
        }
    }

    /// The lines of `format` (json or text) of the events `keep` selects, as a replay prints them.
    func lines(_ format: String, _ keep: (SampleEvent) -> Bool) -> String {
        let all = format == "json" ? json : text
        return events.indices.filter { keep(events[$0]) }.map { all[$0] + "\n" }.joined()
    }
}

/// A command line (with `SAMPLE` for the sample's path), the filter clauses it must give (`not `
/// before a negated one) and the events it keeps.
struct OrderCase: Sendable, CustomTestStringConvertible {
    var words: [String]
    var clauses: [String]
    var keep: @Sendable (SampleEvent) -> Bool

    var testDescription: String { words.joined(separator: " ") }
}

enum InProcess {
    static func path(_ sample: String) -> String { "\(CLIFixtures.packageRoot)/samples/\(sample).vxrec" }

    static func words(_ words: [String], _ sample: String) -> [String] {
        words.map { $0 == "SAMPLE" ? path(sample) : $0 }
    }

    /// The filter clauses a parsed command reads from its words, `not ` before a negated one.
    static func clauses(_ command: ParsableCommand) throws -> [String] {
        let filters: FilterOptions
        let words: [String]
        switch command {
        case let c as Replay: (filters, words) = (c.filters, c.words)
        case let c as Monitor: (filters, words) = (c.filters, c.words)
        case let c as VxmonCLI.Record: (filters, words) = (c.filters, c.words)
        case let c as Stats: (filters, words) = (c.filters, c.words)
        default:
            Issue.record("\(type(of: command)) reads no filters")
            return []
        }
        return try filters.makeFilter(words).clauses.map { ($0.negated ? "not " : "") + $0.flag }
    }

    /// What `replay` prints, run in-process with its output in a file.
    static func output(_ replay: Replay) throws -> String {
        let path = NSTemporaryDirectory() + "/vxmon-inprocess-\(UUID().uuidString).out"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        try replay.run(output: fd)
        return CLIFixtures.text(path) ?? ""
    }
}

@Suite("commands parsed in-process by Vxmon.parse: filters read from the words in order")
struct InProcessCommandTests {
    static let orders: [OrderCase] = [
        OrderCase(
            words: ["replay", "SAMPLE", "--not", "--protocol", "tcp", "-o", "json"], clauses: ["not --protocol"],
            keep: { !$0.transport.contains("TCP") }),
        OrderCase(
            words: ["replay", "SAMPLE", "-o", "json", "--not", "--protocol=tcp"], clauses: ["not --protocol"],
            keep: { !$0.transport.contains("TCP") }),
        OrderCase(
            words: ["replay", "-o", "json", "--protocol", "tcp", "--not", "--node", "worker", "SAMPLE"],
            clauses: ["--protocol", "not --node"], keep: { $0.transport.contains("TCP") && $0.node != "worker" }),
        OrderCase(
            words: ["replay", "--not", "--node", "worker", "--protocol", "udp", "SAMPLE", "-o", "json"],
            clauses: ["not --node", "--protocol"], keep: { $0.transport.contains("UDP") && $0.node != "worker" }),
        OrderCase(
            words: ["replay", "SAMPLE", "-o", "json", "--protocol", "tcp", "--not", "--to-port", "8080"],
            clauses: ["--protocol", "not --to-port"],
            keep: { $0.transport.contains("TCP") && $0.destinationPort != 8080 }),
        OrderCase(
            words: ["replay", "-o", "text", "--not", "--port", "8080", "SAMPLE"], clauses: ["not --port"],
            keep: { $0.sourcePort != 8080 && $0.destinationPort != 8080 }),
    ]

    @Test(
        "--not negates the flag right after it, in any order of the words; the replay keeps what the samples' fields select",
        arguments: orders)
    func notOrder(_ order: OrderCase) throws {
        let words = InProcess.words(order.words, "tcp_udp")
        let replay = try #require(try Vxmon.parse(words) as? Replay)
        #expect(replay.words == words)
        #expect(try InProcess.clauses(replay) == order.clauses)
        let format = words.contains("json") ? "json" : "text"
        let expected = try SampleRenderings("tcp_udp").lines(format, order.keep)
        #expect(!expected.isEmpty)
        #expect(try InProcess.output(replay) == expected)
    }

    @Test(
        "a bad filter is a usage error (ValidationError, exit 64), with the binary's message",
        arguments: [
            ["replay", "SAMPLE", "--protocol", "bogus"], ["replay", "SAMPLE", "--not", "--port", "0"],
            ["replay", "SAMPLE", "--protocol", "tcp", "--not"], ["replay", "SAMPLE", "--not", "--not", "--port", "53"],
            ["SAMPLE", "--not", "-o", "json", "--port", "53"],
        ])
    func badFilter(_ template: [String]) throws {
        let words = InProcess.words(template, "tcp_udp")
        // ArgumentParser takes any value of a filter flag: the filter is read, and refused, when the command runs.
        var command = try Vxmon.parse(words)
        let error = try #require(throws: ValidationError.self) { try command.run() }
        #expect(Vxmon.exitCode(for: error) == .validationFailure)
        guard Binary.exists else { return }
        let binary = try run(Binary.vxmon, words)
        #expect(binary.status == 64)
        #expect(binary.stdout == "")
        #expect(binary.stderr.split(separator: "\n").first.map(String.init) == "Error: \(Vxmon.message(for: error))")
    }

    @Test("`vxmon FILE` (monitor's hidden argument) is the replay of FILE with the same filter and output")
    func monitorRecording() throws {
        let sample = InProcess.path("tcp_udp")
        let flags = ["--protocol", "tcp", "--not", "--node", "worker2", "-o", "json"]
        let monitor = try #require(try Vxmon.parse([sample] + flags) as? Monitor)
        #expect(monitor.recording == sample)
        let replay = try #require(try monitor.replay())
        #expect(replay.file == sample)
        #expect(try InProcess.clauses(replay) == ["--protocol", "not --node"])
        let direct = try #require(try Vxmon.parse(["replay", sample] + flags) as? Replay)
        #expect(try InProcess.clauses(direct) == ["--protocol", "not --node"])

        let expected = try SampleRenderings("tcp_udp").lines("json") {
            $0.transport.contains("TCP") && $0.node != "worker2"
        }
        #expect(!expected.isEmpty)
        #expect(try InProcess.output(replay) == expected)
        #expect(try InProcess.output(direct) == expected)
        guard Binary.exists else { return }
        let binary = try run(Binary.vxmon, [sample] + flags)
        #expect(binary.status == 0)
        #expect(binary.stdout == expected)
    }

    @Test("every command that reads filters gets the words; --timestamps is expanded before ArgumentParser sees it")
    func wordsReachEveryCommand() throws {
        let sample = InProcess.path("tcp_udp")
        let monitor = try #require(try Vxmon.parse(["--not", "--node", "worker"]) as? Monitor)
        #expect(monitor.words == ["--not", "--node", "worker"])
        #expect(try InProcess.clauses(monitor) == ["not --node"])
        #expect(try monitor.replay() == nil)
        let live = try #require(
            try Vxmon.parse(["monitor", "--protocol", "udp", "--not", "--node", "worker2"]) as? Monitor)
        #expect(try InProcess.clauses(live) == ["--protocol", "not --node"])
        let record = try #require(
            try Vxmon.parse(["record", "-w", "/dev/null", "--not", "--protocol", "icmp"]) as? VxmonCLI.Record)
        #expect(try InProcess.clauses(record) == ["not --protocol"])
        let stats = try #require(try Vxmon.parse(["stats", sample, "--not", "--protocol", "tcp"]) as? Stats)
        #expect(try InProcess.clauses(stats) == ["not --protocol"])

        // A bare --timestamps takes no word of what follows it (here --not).
        let stamped = try #require(
            try Vxmon.parse(["replay", sample, "--timestamps", "--not", "--protocol", "tcp"]) as? Replay)
        #expect(stamped.options.timestamps == "StampMilli")
        #expect(stamped.words == ["replay", sample, "--timestamps=StampMilli", "--not", "--protocol", "tcp"])
        #expect(try InProcess.clauses(stamped) == ["not --protocol"])
        let named = try #require(
            try Vxmon.parse(["replay", sample, "--timestamps", "RFC3339", "--port", "53"]) as? Replay)
        #expect(named.options.timestamps == "RFC3339")
        #expect(try InProcess.clauses(named) == ["--port"])

        // A command without filters is returned as ArgumentParser parsed it.
        #expect(try Vxmon.parse(["lab", "status", "--lab", "x"]) is LabCommand.Status)
    }
}
