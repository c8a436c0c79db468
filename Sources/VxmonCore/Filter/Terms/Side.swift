/// A term on one end of a flow: `--ip`/`source_ip`... either end, the source, or the destination.
extension FlowSide {
    @inline(__always)
    func test<T>(_ source: T?, _ destination: T?, _ test: (T) -> Bool) -> Bool {
        switch self {
        case .either: (source.map(test) ?? false) || (destination.map(test) ?? false)
        case .source: source.map(test) ?? false
        case .destination: destination.map(test) ?? false
        }
    }
}
