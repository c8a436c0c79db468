import Foundation
import Testing
import VxmonCore
import VxmonLive

// `-o jsonpb`: Hubble's GetFlowsResponse in protobuf JSON. The oracle is Google's protobuf library
// (Tests/scripts/check_jsonpb.py: strict parsing against vxmon's .proto subset in proto/, compiled by
// grpcio-tools, and a round trip) and, for bulk_2k, Cilium 1.13's own `-j` rendering of the same
// events (verdict, observation point, CT state, identities, interface, addresses and ports).

@Suite("-o jsonpb: Hubble's flows")
struct HubbleJSONTests {
    static let script = CLIFixtures.packageRoot + "/Tests/scripts/check_jsonpb.py"
    static let proto = CLIFixtures.packageRoot + "/proto"

    func check(_ lines: String, cilium: String? = nil, text: String? = nil) throws -> ProcessResult {
        let python = try #require(which("python3"))
        let options = (cilium.map { ["--cilium", $0] } ?? []) + (text.map { ["--cilium-text", $0] } ?? [])
        return try run(python, [Self.script, Self.proto] + options, stdin: Array(lines.utf8))
    }

    @Test("bulk_2k: every line parses and round-trips, and says what Cilium's own rendering of the event says")
    func bulkAgainstCilium() throws {
        // Latest's API: `trace_reason` carries the CT state the script compares with Cilium's.
        let r = try run(Binary.vxmon, ["replay", "\(CLIFixtures.vectors)/bulk_2k.vxrec", "-o", "jsonpb", "--cilium", "latest"])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try check(r.stdout, cilium: "\(CLIFixtures.vectors)/bulk_2k.j.txt", text: "\(CLIFixtures.vectors)/bulk_2k.default.txt")
        #expect(c.status == 0, "\(c.stdout) \(c.stderr)")
        #expect(c.stdout.contains("2000 lines parse and round-trip (2000 flows, 0 lost events)"), "\(c.stdout)")
    }

    @Test("every vector and sample: lines parse and round-trip; debug messages are not flows; lost records are lost_events")
    func everyRecording() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: CLIFixtures.vectors).filter { $0.hasSuffix(".vxrec") }
            .map { "\(CLIFixtures.vectors)/\($0)" }
            + (try FileManager.default.contentsOfDirectory(atPath: FlowCLITests.samples).filter { $0.hasSuffix(".vxrec") }
                .map { "\(FlowCLITests.samples)/\($0)" })
        var all = ""
        for file in files {
            for cilium in ["1.13", "latest"] {
            let r = try run(Binary.vxmon, ["replay", file, "-o", "jsonpb", "--cilium", cilium])
            #expect(r.status == 0 || file.contains("unknown_version"), "\(file): \(r.stderr)")
            all += r.stdout
            if file.contains("/debug_") { #expect(r.stdout.isEmpty, "\(file) is no flow") }
            if file.hasSuffix("/lost_events.vxrec") {
                #expect(r.stdout.contains(#""lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"42","cpu":2}"#))
            }
            }
        }
        let c = try check(all)
        #expect(c.status == 0, "\(c.stdout) \(c.stderr)")
    }

    @Test("the lab's samples: pods by name in namespace default, the VNI of every tunnel is the source pod's identity, traffic direction as Hubble tells it")
    func podsAndVNI() throws {
        // Latest's API: the underlay packets' inner flow and `tunnel` (1.13 shows their outer headers).
        let r = try run(Binary.vxmon, ["replay", "\(FlowCLITests.samples)/cross_node_ping.vxrec", "-o", "jsonpb", "--cilium", "latest"])
        #expect(r.status == 0)
        var tunnels = 0
        for line in r.stdout.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let flow = try #require(object["flow"] as? [String: Any])
            let source = flow["source"] as? [String: Any]
            let destination = flow["destination"] as? [String: Any]
            #expect(source?["namespace"] as? String == "default" && destination?["namespace"] as? String == "default")
            #expect((source?["pod_name"] as? String)?.hasSuffix("-pod1") == true, "\(line)")
            if let tunnel = flow["tunnel"] as? [String: Any], let identity = source?["identity"] as? Int {
                tunnels += 1
                #expect(tunnel["vni"] as? Int == identity, "\(line)")
            }
            // Hubble's rule: egress where the emitting endpoint is the packet's source, reversed for a
            // reply (so the whole ping is worker2-pod1's egress connection and worker-pod1's ingress one);
            // unknown where no endpoint emitted the event (from-overlay, from-network).
            let point = flow["trace_observation_point"] as? String ?? ""
            let reply = flow["is_reply"] as? Bool ?? false
            let expected: String? =
                switch (point, reply) {
                case ("FROM_ENDPOINT", false), ("TO_OVERLAY", false), ("TO_ENDPOINT", true): "EGRESS"
                case ("FROM_ENDPOINT", true), ("TO_OVERLAY", true), ("TO_ENDPOINT", false): "INGRESS"
                default: nil
                }
            #expect(flow["traffic_direction"] as? String == expected, "\(point) reply \(reply): \(line)")
        }
        #expect(tunnels >= 2, "the request and the reply cross the underlay")
    }

    @Test("hostile pod names and namespaces from a recording are escaped: the line still parses, and says exactly what the record said")
    func hostilePodRecord() throws {
        let event = CLIFixtures.bytes("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec")
        let path = NSTemporaryDirectory() + "/vxmon-hostile-\(UUID().uuidString).vxrec"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        let writer = VxrecWriter(output: FileOutput(fd: fd))
        // No comma or '=': those separate a pod record's fields.
        let namespace = "x\"}]evil\\\":\"1\u{1b}[31m\u{202e}"
        writer.metadata("pod", "name=p\"od\u{7},namespace=\(namespace),ip=10.0.2.32,identity=9,node=n")
        writer.flush()
        close(fd)
        // The event itself, appended after the pod record (the vector's records without its header).
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(event.dropFirst(16)))
        try handle.close()
        let r = try run(Binary.vxmon, ["replay", path, "-o", "jsonpb"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x202e || $0.value == 7 })
        let c = try check(r.stdout)
        #expect(c.status == 0, "\(c.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let source = try #require((object["flow"] as? [String: Any])?["source"] as? [String: Any])
        #expect(source["namespace"] as? String == namespace)
        #expect(source["pod_name"] as? String == "p\"od\u{7}")
        #expect((source["labels"] as? [String])?.last == "k8s:io.kubernetes.pod.namespace=" + namespace)
    }
}
