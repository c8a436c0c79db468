import Foundation
import Testing
import VxmonCore

// `vxmon -vv > cni_monitor.yaml`, the usage line vxmon exists for, writes what the file's name says:
// PyYAML (yaml.safe_load_all) is the oracle of the YAML, Foundation's JSONSerialization of the JSON, and
// the recording's own records (read straight from the spec) say how many documents there must be.

/// The lines of `s` (no empty last one).
private func lines(_ s: String) -> [String] {
    var l = s.components(separatedBy: "\n")
    if l.last == "" { l.removeLast() }
    return l
}

/// Runs vxmon with standard output to `path` (created anew) and returns (status, stderr).
func runToFile(_ arguments: [String], stdout path: String) throws -> (status: Int32, stderr: String) {
    let r = try run(Binary.vxmon, arguments, stdoutFile: path)
    return (r.status, r.stderr)
}

/// The documents of a YAML file as PyYAML loads them, handed back as JSON.
func pyYAMLDocuments(_ path: String) throws -> [[String: Any]] {
    let python = try #require(which("python3"), "python3 is the YAML oracle's host")
    let r = try run(
        python,
        ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", path])
    try #require(r.status == 0, "PyYAML could not load \(path): \(r.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
}

@Suite("output format from standard output's file name")
struct OutputFileFormatTests {
    let sample = CLIFixtures.packageRoot + "/samples/cross_node_ping.vxrec"

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "/vxmon-fmt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The events of the sample: its raw samples and lost records, from the spec.
    var sampleEvents: Int { records(CLIFixtures.bytes(sample)).filter { $0.kind == 1 || $0.kind == 2 }.count }

    @Test("vxmon replay -vv > cni_monitor.yaml: YAML PyYAML loads, one document per event, with the layers")
    func yamlByName() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["cni_monitor.yaml", "CNI.YML"] {
            let path = "\(dir)/\(name)"
            let r = try runToFile(["replay", sample, "-vv"], stdout: path)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("standard output is \(name): writing YAML"), "\(r.stderr)")
            #expect(r.stderr.contains("-o text"), "names the flag that keeps Cilium's text: \(r.stderr)")
            #expect(lines(r.stderr).filter { $0.contains("writing YAML") }.count == 1, "said once: \(r.stderr)")
            let docs = try pyYAMLDocuments(path)
            #expect(sampleEvents > 10)
            #expect(docs.count == sampleEvents)
            for doc in docs where doc["type"] as? String == "trace" {
                let monitor = try #require(doc["monitor"] as? [String], "-vv adds the monitor lines")
                #expect(monitor.first?.hasPrefix("CPU ") == true, "\(monitor)")
                #expect(monitor.contains { $0.hasPrefix("Ethernet\t{") } && monitor.contains { $0.hasPrefix("IPv4\t{") }, "\(monitor)")
                let layers = (doc["packet"] as? [String: Any])?["layers"] as? [[String: Any]] ?? []
                #expect(layers.contains { $0["layer"] as? String == "ipv4" })
            }
        }
    }

    @Test("a .json file gets JSON lines; -o text keeps Cilium's text without a word; other files stay text")
    func otherNames() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let json = try runToFile(["replay", sample], stdout: "\(dir)/flows.json")
        #expect(json.status == 0 && json.stderr.contains("writing JSON"), "\(json.stderr)")
        let objects = lines(CLIFixtures.text("\(dir)/flows.json") ?? "").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == sampleEvents)
        #expect(objects.allSatisfy { $0["monitor"] == nil }, "the default JSON has no monitor lines")

        let text = try runToFile(["replay", sample, "-o", "text"], stdout: "\(dir)/cni_monitor.yaml")
        #expect(text.status == 0 && text.stderr == "", "\(text.stderr)")
        let cilium = try run(Binary.vxmon, ["replay", sample])  // stdout: a file named *.out
        #expect(cilium.stderr == "")
        #expect(CLIFixtures.text("\(dir)/cni_monitor.yaml") == cilium.stdout)
        #expect(cilium.stdout.hasPrefix("[worker2] <- endpoint"), "\(cilium.stdout.prefix(80))")

        // Quiet and explicit formats are not overridden either.
        let quiet = try runToFile(["replay", sample, "-q"], stdout: "\(dir)/q.yaml")
        #expect(quiet.status == 0 && quiet.stderr == "" && CLIFixtures.text("\(dir)/q.yaml") == "")
    }

    @Test("--hex adds packet.data, the captured bytes, in YAML too")
    func hexInYAML() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vector = "\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"
        let r = try runToFile(["replay", vector, "--hex"], stdout: "\(dir)/x.yaml")
        #expect(r.status == 0, "\(r.stderr)")
        let docs = try pyYAMLDocuments("\(dir)/x.yaml")
        let body = try #require(records(CLIFixtures.bytes(vector)).first { $0.kind == 1 }?.body)
        let data = try #require((docs.first?["packet"] as? [String: Any])?["data"] as? String)
        // Trace v1: a 48-byte header, then the captured bytes.
        #expect(hexBytes(data) == Array(body.dropFirst(48)))
        #expect(docs.first?["monitor"] == nil)
    }
}
