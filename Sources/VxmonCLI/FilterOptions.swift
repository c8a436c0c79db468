import ArgumentParser
import VxmonCore

/// A command that reads its command line again after ArgumentParser has parsed it: its filters, in
/// order (see `FilterOptions`). `Vxmon.parse` sets `words`. ArgumentParser leaves the property alone:
/// a stored property without one of its property wrappers is never read from the command line, only
/// decoded from its initial value ("non-parsed variable properties", swift-argument-parser 0.4.0).
protocol CommandWords: ParsableCommand {
    /// The words after the program's name, as `Vxmon.parse` parsed them (`--timestamps` expanded).
    var words: [String] { get set }
}

/// Event filters shared by monitor, record, replay and stats. ArgumentParser checks and documents
/// them; `FilterParser` reads them again from the command's words in order, because `--not` negates
/// the flag that follows it, and order is what ArgumentParser does not keep.
struct FilterOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .long], parsing: .unconditionalSingleValue, help: ArgumentHelp("Only this Cilium message type (repeatable): drop, debug, capture, trace, policy-verdict, recorder, trace-sock, l7, agent.", valueName: "type"))
    var type: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Only events from this endpoint ID (repeatable; Cilium's --from).", valueName: "id"))
    var from: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Only events to this endpoint ID (repeatable; Cilium's --to).", valueName: "id"))
    var to: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Only events from or to this endpoint ID (repeatable).", valueName: "id"))
    var relatedTo: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source or destination address or CIDR (v4 or v6).", valueName: "ip"))
    var ip: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source address or CIDR.", valueName: "ip"))
    var fromIp: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Destination address or CIDR.", valueName: "ip"))
    var toIp: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source or destination port.", valueName: "port"))
    var port: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source port.", valueName: "port"))
    var fromPort: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Destination port.", valueName: "port"))
    var toPort: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("tcp, udp, sctp, icmp, icmpv4, icmpv6 or arp.", valueName: "proto"))
    var `protocol`: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source or destination security identity (number or reserved name).", valueName: "id"))
    var identity: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source security identity.", valueName: "id"))
    var fromIdentity: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Destination security identity.", valueName: "id"))
    var toIdentity: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source or destination lab pod (from the lab, or a recording's pod records).", valueName: "pod"))
    var pod: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Source lab pod.", valueName: "pod"))
    var fromPod: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Destination lab pod.", valueName: "pod"))
    var toPod: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Tunnel VNI (VXLAN/Geneve packets).", valueName: "vni"))
    var vni: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Trace observation point: to-overlay or TO_OVERLAY, ...", valueName: "point"))
    var observationPoint: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("forwarded, dropped, audit, redirected, traced, translated or error.", valueName: "verdict"))
    var verdict: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Drop reason: code or name (133, 'Policy denied', POLICY_DENIED).", valueName: "reason"))
    var dropReason: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Interface name or index the datapath reported.", valueName: "if"))
    var interface: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("TCP flags that must be set, ! for clear: SYN or SYN,!ACK.", valueName: "flags"))
    var tcpFlags: [String] = []

    @Flag(help: "Negate the filter flag that follows (--not --port 53).")
    var not: Int

    @Flag(help: "Match addresses, ports and protocols on the outer headers of VXLAN/Geneve packets (default: the inner ones).")
    var outer = false

    /// The filter of `words` (the command's, see `CommandWords`), in their order. A bad value is a
    /// usage error (exit 64).
    func makeFilter(_ words: [String]) throws -> EventFilter {
        do {
            return try FilterParser.parse(words)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
