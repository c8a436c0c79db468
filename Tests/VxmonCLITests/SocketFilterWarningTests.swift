import Foundation
import Testing

// A filter that cannot match anything a Cilium agent's socket can carry says so at start: the stream
// has no node names and no pod records.
@Suite("filters a Cilium socket cannot match")
struct SocketFilterWarningTests {
    @Test("--node and --pod on --monitor-socket warn at start, before the connection is tried")
    func warns() throws {
        let r = try run(
            Binary.vxmon, ["--monitor-socket", "/nonexistent/monitor1_2.sock", "--node", "worker", "--pod", "a", "--duration", "0.1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.first == "vxmon: warning: --node worker: a Cilium agent's monitor socket names no nodes: nothing will match")
        #expect(lines.dropFirst().first == "vxmon: warning: --pod a: a Cilium agent's monitor socket names no pods: nothing will match")
        let plain = try run(Binary.vxmon, ["--monitor-socket", "/nonexistent/monitor1_2.sock", "--ip", "10.0.0.1", "--duration", "0.1"])
        #expect(!plain.stderr.contains("warning"), "\(plain.stderr)")
    }
}
