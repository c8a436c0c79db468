import Foundation
import Testing
import VxmonCore
import VxmonWire
import VxmonHubble

/// The ring and the filter compiler on their own (hand-computed expectations); the servers are
/// checked end to end by an independent client in VxmonBPFTests/HubbleServerTests.
struct FlowRingTests {
    func flow(_ n: Int) -> Observer_GetFlowsResponse {
        var r = Observer_GetFlowsResponse()
        r.flow.nodeName = "n\(n)"
        return r
    }

    @Test("the ring keeps the last N entries with sequence numbers; a reader that fell behind learns how many it missed")
    func ringOverwritesAndCountsMissed() {
        let ring = FlowRing(capacity: 4)
        for i in 0..<6 { ring.append(flow(i)) }
        #expect(ring.window == 2..<6)
        let status = ring.status
        #expect(status.numFlows == 4 && status.maxFlows == 4 && status.seenFlows == 6)
        let (entries, missed) = ring.read(from: 0, limit: 10)
        #expect(missed == 2)
        #expect(entries.map(\.0) == [2, 3, 4, 5])
        #expect(entries.map { $0.1.flow.nodeName } == ["n2", "n3", "n4", "n5"])
        let (some, none) = ring.read(from: 3, limit: 2)
        #expect(none == 0 && some.map(\.0) == [3, 4])
        #expect(ring.read(from: 6, limit: 5).entries.isEmpty)
    }

    @Test("lost-events notices are held but not counted as seen flows")
    func lostNoticesAreNotFlows() {
        let ring = FlowRing(capacity: 8)
        var lost = Observer_GetFlowsResponse()
        lost.lostEvents.numEventsLost = 3
        ring.append(lost)
        ring.append(flow(1))
        #expect(ring.status.numFlows == 2 && ring.status.seenFlows == 1)
    }

    @Test("followers are woken once per batch, and closing ends their streams")
    func updatesAndClose() async {
        let ring = FlowRing(capacity: 8)
        let updates = ring.updates()
        #expect(ring.waiterCount == 1)
        ring.append(flow(1))
        ring.append(flow(2))
        ring.notify()
        ring.notify()  // nothing new: no second wake-up
        ring.close()
        var wakeups = 0
        for await _ in updates { wakeups += 1 }
        #expect(wakeups == 1)
        var after = 0
        for await _ in ring.updates() { after += 1 }
        #expect(after == 0, "a stream started after close ends at once")
    }

    @Test("the warm-up flow parses with every kind of field the renderer writes")
    func warmUpParses() {
        #expect(FlowIngest.warmUp())
    }

    @Test("a request's filters are bounded: 64 filters and 1024 values pass, one more of either is refused")
    func filterBounds() throws {
        let pods = PodDirectory()
        func filter(_ values: Int) -> Flow_FlowFilter {
            var f = Flow_FlowFilter()
            f.sourcePort = (0..<values).map { String($0) }
            return f
        }
        _ = try HubbleFilter(whitelist: Array(repeating: filter(8), count: 32), blacklist: Array(repeating: filter(24), count: 32), pods: pods)
        #expect(throws: HubbleFilter.UnsupportedFilter.self) {
            try HubbleFilter(whitelist: Array(repeating: filter(1), count: 65), blacklist: [], pods: pods)
        }
        #expect(throws: HubbleFilter.UnsupportedFilter.self) {
            try HubbleFilter(whitelist: [filter(1024)], blacklist: [filter(1)], pods: pods)
        }
        var pattern = Flow_FlowFilter()
        pattern.nodeName = [String(repeating: "*a", count: 129)]
        #expect(throws: HubbleFilter.UnsupportedFilter.self) { try HubbleFilter(whitelist: [pattern], blacklist: [], pods: pods) }
    }

    @Test("filters: unsupported fields are refused by name, bad values are refused, supported ones compile")
    func filterCompilation() throws {
        var label = Flow_FlowFilter()
        label.sourceLabel = ["k8s:app=x"]
        #expect(throws: HubbleFilter.UnsupportedFilter.self) { try HubbleFilter(whitelist: [label], blacklist: [], pods: PodDirectory()) }
        do {
            _ = try HubbleFilter(whitelist: [], blacklist: [label], pods: PodDirectory())
            Issue.record("a blacklist with an unsupported field was accepted")
        } catch let error as HubbleFilter.UnsupportedFilter {
            #expect(error.description.contains("source_label"), "\(error.description)")
        }
        var bad = Flow_FlowFilter()
        bad.destinationPort = ["65536"]
        #expect(throws: HubbleFilter.UnsupportedFilter.self) { try HubbleFilter(whitelist: [bad], blacklist: [], pods: PodDirectory()) }
        var http = Flow_FlowFilter()
        http.protocol = ["http"]
        #expect(throws: HubbleFilter.UnsupportedFilter.self) { try HubbleFilter(whitelist: [http], blacklist: [], pods: PodDirectory()) }
        var good = Flow_FlowFilter()
        good.sourcePod = ["worker2-pod"]
        good.nodeName = ["work*2"]
        let pods = PodDirectory()
        let a = IPAddress.v4(IPv4Address(rawValue: 0x0a00_020a)), b = IPAddress.v4(IPv4Address(rawValue: 0x0a00_020b))
        pods.learn(PodInfo(name: "worker2-pod1", ip: a, identity: 1, node: "worker2"))
        pods.learn(PodInfo(name: "worker2-pod2", namespace: "kube-system", ip: b, identity: 2, node: "worker2"))
        let filter = try HubbleFilter(whitelist: [good], blacklist: [], pods: pods)
        var f = Flow()
        f.outer.source = a
        f.node = "worker2"
        func passes(_ f: Flow) -> Bool { filter.matches(.flow(f, HubbleFlow())) }
        #expect(passes(f))
        f.outer.source = b
        #expect(!passes(f), "no namespace in the selector means default")
        f.outer.source = a
        f.node = "worker"
        #expect(!passes(f))
        var uuid = Flow_FlowFilter()
        uuid.uuid = ["x"]
        #expect(!(try HubbleFilter(whitelist: [uuid], blacklist: [], pods: pods)).matches(.flow(f, HubbleFlow())), "vxmon's flows have no UUID")
    }
}

/// What the Hubble servers serve for the audit vectors: the flows FlowIngest puts in a node's ring
/// (what GetFlows sends) carry Hubble's verdict, and a `verdict` FlowFilter selects them by it
/// (VxmonCLITests/VerdictReadingTests checks the same events' text, JSON, counters, --verdict, jsonpb).
struct ServedVerdictTests {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/vectors").path

    @Test("a policy verdict with the audit flag: the served flow is REDIRECTED for a redirect, AUDIT for an allow, DROPPED for a denial")
    func auditVectors() throws {
        for (verdict, expected) in [(Int32?.none, Flow_Verdict.redirected), (0, .audit), (-133, .dropped)] {
            var file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.vectors + "/policy_verdict_ingress_redirect_audit.vxrec")))
            // The only record starts at 16 (file header) + 24 (record header); its verdict is at 20.
            if let verdict {
                let v = UInt32(bitPattern: verdict)
                for k in 0..<4 { file[40 + 20 + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            }
            let ring = FlowRing(capacity: 8)
            let pipeline = EventPipeline(format: .none, diagnostics: { _ in })
            pipeline.node = "n"
            pipeline.add(FlowIngest(rings: ["n": ring], pods: pipeline.pods, names: pipeline.names))
            var consumer = pipeline
            let parser = VxrecParser()
            file.withUnsafeBytes { parser.feed($0) }
            try parser.parse(into: &consumer)
            try parser.finish()
            let stored = ring.entries(from: 0, limit: 8).entries.map(\.1)
            let served = ring.read(from: 0, limit: 8).entries.map(\.1)
            try #require(served.count == 1 && stored.count == 1, "one flow served")
            #expect(served[0].flow.verdict == expected)
            for filterVerdict in [Flow_Verdict.forwarded, .dropped, .audit, .redirected] {
                var filter = Flow_FlowFilter()
                filter.verdict = [filterVerdict]
                let f = try HubbleFilter(whitelist: [filter], blacklist: [], pods: pipeline.pods)
                #expect(f.matches(stored[0]) == (filterVerdict == expected), "\(expected): filter \(filterVerdict)")
            }
        }
    }
}
