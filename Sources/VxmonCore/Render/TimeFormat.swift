#if canImport(Glibc)
import Glibc
#endif

/// Text timestamp formats (`--timestamps=FORMAT`), named as Hubble's `--time-format` names them.
/// Times are shown in the local time zone, whose UTC offset is read once when the format is made.
public enum TimeFormat: String, Sendable, CaseIterable {
    /// `Jan _2 15:04:05.000` (Go's `time.StampMilli`), the default.
    case stampMilli = "StampMilli"
    /// `2006-01-02T15:04:05Z07:00`
    case rfc3339 = "RFC3339"
    /// `2006-01-02T15:04:05.000Z07:00`
    case rfc3339Milli = "RFC3339Milli"
    /// `2006-01-02T15:04:05.000000Z07:00`
    case rfc3339Micro = "RFC3339Micro"
    /// `2006-01-02T15:04:05.999999999Z07:00` (Go's `time.RFC3339Nano`: trailing zeros dropped)
    case rfc3339Nano = "RFC3339Nano"
    /// Seconds since the Unix epoch with nanoseconds: `1764608719.123456789`.
    case unix

    /// Parses a format name, case-insensitively.
    public init?(name: String) {
        guard let f = TimeFormat.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            return nil
        }
        self = f
    }
}

/// Formats event times for text output (and, fixed at nine digits in UTC, for JSON/YAML).
public struct TimeFormatter: Sendable {
    public var format: TimeFormat
    /// Local time's offset from UTC in seconds.
    public var utcOffset: Int
    /// RFC 3339 with all nine fraction digits, never trimmed (the structured outputs' `time`).
    var fixedNanoseconds = false

    public init(format: TimeFormat, utcOffset: Int? = nil) {
        self.format = format
        self.utcOffset = utcOffset ?? TimeFormatter.localOffset()
    }

    /// UTC, nine fraction digits.
    static let utcNano: TimeFormatter = {
        var f = TimeFormatter(format: .rfc3339Nano, utcOffset: 0)
        f.fixedNanoseconds = true
        return f
    }()

    /// The local time zone's current offset from UTC.
    public static func localOffset() -> Int {
        #if canImport(Glibc)
            var now = time(nil)
            var parts = tm()
            guard localtime_r(&now, &parts) != nil else { return 0 }
            return parts.tm_gmtoff
        #else
            return 0
        #endif
    }

    static let months: [StaticString] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]

    /// Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    static func civil(days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (Int(yoe + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
    }

    /// Appends the time `ns` (since the Unix epoch) in this format.
    public func append(_ ns: UInt64, to out: OutputBuffer) {
        let nanos = Int(ns % 1_000_000_000)
        if format == .unix {
            out.decimal(ns / 1_000_000_000)
            out.append(byte: UInt8(ascii: "."))
            out.decimal(nanos, width: 9)
            return
        }
        let seconds = Int64(ns / 1_000_000_000) + Int64(utcOffset)
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secOfDay = Int(seconds - days * 86400)
        let (year, month, day) = Self.civil(days: days)
        if format == .stampMilli {
            out.append(Self.months[month - 1])
            out.append(byte: 32)
            if day < 10 { out.append(byte: 32) }
            out.decimal(day)
            out.append(byte: 32)
        } else {
            out.decimal(year, width: 4)
            out.append(byte: UInt8(ascii: "-"))
            out.decimal(month, width: 2)
            out.append(byte: UInt8(ascii: "-"))
            out.decimal(day, width: 2)
            out.append(byte: UInt8(ascii: "T"))
        }
        out.decimal(secOfDay / 3600, width: 2)
        out.append(byte: UInt8(ascii: ":"))
        out.decimal(secOfDay / 60 % 60, width: 2)
        out.append(byte: UInt8(ascii: ":"))
        out.decimal(secOfDay % 60, width: 2)
        switch format {
        case .stampMilli, .rfc3339Milli:
            out.append(byte: UInt8(ascii: "."))
            out.decimal(nanos / 1_000_000, width: 3)
        case .rfc3339Micro:
            out.append(byte: UInt8(ascii: "."))
            out.decimal(nanos / 1000, width: 6)
        case .rfc3339Nano where fixedNanoseconds:
            out.append(byte: UInt8(ascii: "."))
            out.decimal(nanos, width: 9)
        case .rfc3339Nano where nanos != 0:
            var digits = 9
            var value = nanos
            while value % 10 == 0 {
                value /= 10
                digits -= 1
            }
            out.append(byte: UInt8(ascii: "."))
            out.decimal(value, width: digits)
        default: break
        }
        if format == .stampMilli { return }
        if utcOffset == 0 {
            out.append(byte: UInt8(ascii: "Z"))
        } else {
            let minutes = abs(utcOffset) / 60
            out.append(byte: utcOffset < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            out.decimal(minutes / 60, width: 2)
            out.append(byte: UInt8(ascii: ":"))
            out.decimal(minutes % 60, width: 2)
        }
    }
}
