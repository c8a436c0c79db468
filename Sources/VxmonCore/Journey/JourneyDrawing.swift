/// Draws journeys as a sequence diagram (SVG, or an HTML page holding it): one lane per node, an arrow
/// per hop labelled with its latency, drops in red. (Stub: replaced by the full drawing.)
public final class JourneyDrawing: JourneyOutput {
    public let limit: Int
    public private(set) var exchanges: [[Journey]] = []
    /// Exchanges past `limit`, not drawn.
    public private(set) var notDrawn = 0

    public init(limit: Int) { self.limit = limit }

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder) {
        if exchanges.count < limit { exchanges.append(Array(journeys)) } else { notDrawn += 1 }
    }

    public func svg(_ builder: JourneyBuilder) -> String { "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>\n" }

    public func html(_ builder: JourneyBuilder) -> String { "<!DOCTYPE html><html><body>" + svg(builder) + "</body></html>\n" }
}
