import GRPCCore
import Synchronization
import Testing
import VxmonCore

@testable import VxmonHubble

/// GetFlows' history walk on its own, with a response writer that stands in for the client: what it
/// was sent is the test's to count, against the ring it filled itself.
struct HistoryWalkTests {
    /// Collects what the request writes; on its first write, appends `burst` flows to the ring (a
    /// flood arriving while the client reads), which overtakes the walk.
    final class Client: RPCWriterProtocol, Sendable {
        let ring: FlowRing
        let burst: Int
        let got = Mutex<[Observer_GetFlowsResponse]>([])
        init(ring: FlowRing, burst: Int) {
            self.ring = ring
            self.burst = burst
        }
        func write(_ element: Observer_GetFlowsResponse) async throws { try await write(contentsOf: [element]) }
        func write(contentsOf elements: some Sequence<Observer_GetFlowsResponse>) async throws {
            let first = got.withLock { list in
                let wasEmpty = list.isEmpty
                list.append(contentsOf: elements)
                return wasEmpty
            }
            if first { for i in 0..<burst { ring.append(HistoryWalkTests.flow(1000 + i)) } }
        }
    }

    static func flow(_ n: Int) -> Observer_GetFlowsResponse {
        var r = Observer_GetFlowsResponse()
        r.flow.nodeName = "n\(n)"
        return r
    }

    @Test("a history the ring overtakes while the client reads: flows sent plus flows said lost are the history's size, not more (the lost entries past its end were counted too)")
    func overtakenHistoryCountsEachLossOnce() async throws {
        let ring = FlowRing(capacity: 100)
        for i in 0..<100 { ring.append(Self.flow(i)) }
        let node = HubbleLab.Node(name: "n", address: "127.0.0.1:4244", ring: ring)
        let service = ObserverService(lab: HubbleLab(nodes: [node], version: "test"), node: node)
        var request = Observer_GetFlowsRequest()
        request.first = true
        request.number = 1000
        let client = Client(ring: ring, burst: 300)
        let lab = HubbleLab(nodes: [node], version: "test")
        try await service.serve(FlowQuery(request, pods: lab.pods), TimedWriter(RPCWriter(wrapping: client)))
        let got = client.got.withLock { $0 }
        var flows = 0
        var lost: UInt64 = 0
        for message in got {
            switch message.responseTypes {
            case .flow?: flows += 1
            case .lostEvents(let l)?: lost += l.numEventsLost
            default: break
            }
        }
        // 100 flows were held when the request came: the first batch of them was sent, the rest lost.
        #expect(flows == ObserverService.batch, "\(flows) flows")
        #expect(UInt64(flows) + lost == 100, "\(flows) flows + \(lost) lost")
    }
}
