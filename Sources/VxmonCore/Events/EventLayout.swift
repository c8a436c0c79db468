/// Byte offsets and lengths of Cilium's monitor messages, as the decoder reads them. The C structs in
/// bpf/include/vxmon/events.h are the other copy; Tests/VxmonCoreTests/EventABITests.swift proves
/// they agree. Header fields are host order (little-endian on the platforms vxmon supports).
public enum EventLayout {
    public enum Common {
        public static let type = 0
        public static let subtype = 1
        public static let source = 2
        public static let hash = 4
        public static let length = 8
    }

    public enum Capture {
        public static let lengthOriginal = 8
        public static let lengthCaptured = 12
        public static let version = 14
        /// Latest Cilium: byte 15 is the extension version (0 upstream); 1.13 reads 14..15 as u16.
        public static let extensionVersion = 15
    }

    public enum Trace {
        public static let sourceIdentity = 16
        public static let destinationIdentity = 20
        public static let destinationID = 24
        public static let reason = 26
        public static let flags = 27
        public static let ifindex = 28
        public static let originalIP = 32
        public static let ipTraceID = 48
        /// Header length (= packet offset) per version: v0 32, v1 48, v2 56.
        public static func headerLength(version: UInt8) -> Int? {
            switch version {
            case 0: 32
            case 1: 48
            case 2: 56
            default: nil
            }
        }
    }

    public enum Drop {
        public static let sourceIdentity = 16
        public static let destinationIdentity = 20
        public static let destinationID = 24
        public static let line = 28
        public static let file = 30
        public static let extError = 31
        public static let ifindex = 32
        public static let flags = 36
        public static let ipTraceID = 40
        /// Header length per version: v0/v1 36, v2 40, v3 48.
        public static func headerLength(version: UInt8) -> Int? {
            switch version {
            case 0, 1: 36
            case 2: 40
            case 3: 48
            default: nil
            }
        }
    }

    public enum Debug {
        public static let arg1 = 8
        public static let arg2 = 12
        public static let arg3 = 16
        public static let length = 20
    }

    public enum DebugCapture {
        public static let arg1 = 16
        public static let arg2 = 20
        public static let headerLength = 24
    }

    public enum PolicyVerdict {
        public static let remoteIdentity = 16
        public static let verdict = 20
        public static let destinationPort = 24
        public static let proto = 26
        public static let flags = 27
        public static let authType = 28
        public static let cookie = 32
        /// Cilium <= 1.18: 32 bytes; 1.19+: 40 bytes (cookie and padding).
        public static func headerLength(_ release: CiliumRelease) -> Int { release == .latest ? 40 : 32 }
    }

    public enum TraceSock {
        /// Cilium 1.13's packed layout (38 bytes).
        public enum V113 {
            public static let xlatePoint = 1
            public static let destinationIP = 2
            public static let destinationPort = 18
            public static let socketCookie = 20
            public static let cgroupID = 28
            public static let l4Proto = 36
            public static let flags = 37
            public static let length = 38
        }
        /// Cilium 1.19+'s aligned layout (40 bytes).
        public enum Latest {
            public static let xlatePoint = 1
            public static let l4Proto = 2
            public static let flags = 3
            public static let destinationPort = 4
            public static let socketCookie = 8
            public static let cgroupID = 16
            public static let destinationIP = 24
            public static let length = 40
        }
    }

    public enum Recorder {
        public static let ruleID = 2
        public static let bootNanoseconds = 8
        public static let captureLength = 16
        public static let length = 20
        public static let headerLength = 24
    }
}
