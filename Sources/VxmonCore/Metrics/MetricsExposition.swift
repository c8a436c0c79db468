/// The two exposition formats a scrape can get.
public enum MetricsFormat: Sendable, Equatable {
    /// Prometheus text format 0.0.4 (what Cilium's /metrics answers by default).
    case text
    /// OpenMetrics 1.0.0: counters' HELP/TYPE names without `_total`, and `# EOF` at the end.
    case openMetrics

    /// The response's Content-Type (promhttp's strings).
    public var contentType: StaticString {
        switch self {
        case .text: "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// The format a request's `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality, else the text format (also without a
    /// header, as promhttp does).
    public static func negotiate(accept: Substring?) -> MetricsFormat {
        guard let accept else { return .text }
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.withoutBlanks.lowercased() }
            guard parts.first == "application/openmetrics-text" else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            if q > 0 { return .openMetrics }
        }
        return .text
    }
}

extension Substring {
    fileprivate var withoutBlanks: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

/// Writes metric families in one of the two formats: `# HELP`, `# TYPE`, then one line per series,
/// label pairs in the family's (sorted) order, label values escaped (`\\`, `\"`, `\n`).
public struct MetricsWriter {
    public let out: OutputBuffer
    public let format: MetricsFormat

    public init(out: OutputBuffer, format: MetricsFormat) {
        self.out = out
        self.format = format
    }

    /// The name `# HELP` and `# TYPE` carry: OpenMetrics drops a counter's `_total`.
    func familyName(_ name: String, _ kind: MetricKind) -> Substring {
        if format == .openMetrics && kind == .counter && name.hasSuffix("_total") { return name.dropLast(6) }
        return name[...]
    }

    /// `# HELP` and `# TYPE` lines.
    public func header(name: String, help: String, kind: MetricKind) {
        let family = familyName(name, kind)
        out.append("# HELP ")
        out.append(String(family))
        out.append(byte: 0x20)
        escape(help, quotes: format == .openMetrics)
        out.append("\n# TYPE ")
        out.append(String(family))
        out.append(byte: 0x20)
        out.append(kind.typeName)
        out.append(byte: 0x0a)
    }

    /// A whole family: its header and every series (none: the header alone, as client_golang prints
    /// nothing for a vector without children; we keep the header so a dashboard's query names a
    /// family that exists).
    public func family(_ table: MetricTable) {
        header(name: table.name, help: table.help, kind: table.kind)
        switch table.kind {
        case .counter, .gauge:
            table.forEachSeries { labels, values in
                if table.kind == .gauge && values[0] == MetricTable.absent { return }
                sample(table.name, table.labelNames, labels, values[0])
            }
        case .histogram(let buckets):
            let base = table.name
            table.forEachSeries { labels, values in
                var cumulative: UInt64 = 0
                for (i, bound) in buckets.enumerated() {
                    cumulative &+= values[i]
                    line(base, "_bucket", table.labelNames, labels, extra: ("le", Self.number(bound)), .integer(cumulative))
                }
                cumulative &+= values[buckets.count]
                line(base, "_bucket", table.labelNames, labels, extra: ("le", "+Inf"), .integer(cumulative))
                line(base, "_sum", table.labelNames, labels, extra: nil, .real(Double(bitPattern: values[buckets.count + 1])))
                line(base, "_count", table.labelNames, labels, extra: nil, .integer(cumulative))
            }
        }
    }

    /// One sample line with an integer value.
    public func sample(_ name: String, _ labelNames: [String], _ labels: [String], _ value: UInt64) {
        line(name, "", labelNames, labels, extra: nil, .integer(value))
    }

    /// One sample line with a float value.
    public func sample(_ name: String, _ labelNames: [String], _ labels: [String], _ value: Double) {
        line(name, "", labelNames, labels, extra: nil, .real(value))
    }

    private enum Value {
        case integer(UInt64)
        case real(Double)
    }

    /// `name` + `suffix`, the label set, the value: one sample line.
    private func line(
        _ name: String, _ suffix: StaticString, _ labelNames: [String], _ labels: [String], extra: (String, String)?,
        _ value: Value
    ) {
        out.append(name)
        out.append(suffix)
        labelSet(labelNames, labels, extra: extra)
        out.append(byte: 0x20)
        switch value {
        case .integer(let v): out.unsignedDecimal(v)
        case .real(let v): out.append(Self.number(v))
        }
        out.append(byte: 0x0a)
    }

    /// A family of one unlabelled sample.
    public func single(name: String, help: String, kind: MetricKind, _ value: Double) {
        header(name: name, help: help, kind: kind)
        sample(name, [], [], value)
    }

    public func single(name: String, help: String, kind: MetricKind, _ value: UInt64) {
        header(name: name, help: help, kind: kind)
        sample(name, [], [], value)
    }

    /// The end of the exposition (OpenMetrics' `# EOF`; nothing in the text format).
    public func finish() {
        if format == .openMetrics { out.append("# EOF\n") }
    }

    private func labelSet(_ names: [String], _ values: [String], extra: (String, String)?) {
        guard !names.isEmpty || extra != nil else { return }
        out.append(byte: UInt8(ascii: "{"))
        var first = true
        for (name, value) in zip(names, values) {
            if !first { out.append(byte: UInt8(ascii: ",")) }
            first = false
            out.append(name)
            out.append("=\"")
            escape(value, quotes: true)
            out.append(byte: UInt8(ascii: "\""))
        }
        if let (name, value) = extra {
            if !first { out.append(byte: UInt8(ascii: ",")) }
            out.append(name)
            out.append("=\"")
            out.append(value)
            out.append(byte: UInt8(ascii: "\""))
        }
        out.append(byte: UInt8(ascii: "}"))
    }

    /// Escapes a label value (`\\`, `\"`, `\n`) or HELP text (`\\`, `\n`; OpenMetrics also `\"`).
    private func escape(_ s: String, quotes: Bool) {
        var plain = true
        for b in s.utf8 where b == 0x5c || b == 0x0a || (quotes && b == 0x22) {
            plain = false
            break
        }
        if plain {
            out.append(s)
            return
        }
        for b in s.utf8 {
            switch b {
            case 0x5c: out.append("\\\\")
            case 0x0a: out.append("\\n")
            case 0x22 where quotes: out.append("\\\"")
            default: out.append(byte: b)
            }
        }
    }

    /// A float as both parsers read it: Swift's shortest round-trip form (`0.25`, `1e-06`), `+Inf`,
    /// `-Inf`, `NaN`.
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return v.description
    }
}
