/// Cilium's monitor filters, `-t/--type`, `--from`, `--to`, `--related-to` (its `match(type, src,
/// dst)`): the message type, the endpoint that emitted the event and `Flow.monitorDestination`.
/// Socket traces and the types the release does not decode are not filtered, as in Cilium
/// (`Flow.monitorFilters`).
struct MonitorTerm {
    let types: [MessageType]
    let from: [UInt16]
    let to: [UInt16]
    let related: [UInt16]

    /// Nil when the filter has none of these flags.
    init?(_ filter: EventFilter) {
        guard !filter.types.isEmpty || !filter.fromEndpoints.isEmpty || !filter.toEndpoints.isEmpty
            || !filter.relatedEndpoints.isEmpty
        else { return nil }
        types = filter.types
        from = filter.fromEndpoints
        to = filter.toEndpoints
        related = filter.relatedEndpoints
    }

    func matches(_ flow: UnsafePointer<Flow>) -> Bool {
        guard flow.pointee.monitorFilters else { return true }
        let type = flow.pointee.type
        let source = type == MessageType.recorder ? 0 : flow.pointee.endpoint
        let destination = flow.pointee.monitorDestination
        if !types.isEmpty && !types.contains(type) { return false }
        if !from.isEmpty && !from.contains(source) { return false }
        if !to.isEmpty && !to.contains(destination) { return false }
        if !related.isEmpty && !related.contains(source) && !related.contains(destination) { return false }
        return true
    }
}
