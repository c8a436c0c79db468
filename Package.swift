// swift-tools-version: 6.0
import PackageDescription

// The decode/render hot path runs per event at millions of events per second. In release builds the
// dynamic exclusivity checks on class properties are off for these two modules: measured on
// 2026-12-01 in one run (callgrind, 50k bulk events, `vxmon replay --threads 1`), keeping them costs
// +22% instructions at default (243.7M -> 297.6M), +13% at -vv (460.9M -> 522.3M), +5.5% for JSON
// (926.2M -> 977.2M). Memory safety does not depend on them (every load is bounds-checked; fuzzing
// runs with ASan); debug builds, the test suite and `make asan`/`make tsan` keep them, so a
// violation still traps there.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "vxmon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vxmon", targets: ["vxmon"]),
        .library(name: "VxmonCore", targets: ["VxmonCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Only for the Hubble observer servers (VxmonHubble, vxmon-hubble): no core target depends on
        // them, so `swift build --product vxmon` and the fuzz and bench builds never compile gRPC.
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // The event ABI headers shared with the BPF programs, imported through bpf/include's module
        // map. A module-map-only target: SwiftPM compiles nothing under bpf/ (a C target there built
        // vxmon.bpf.c with the host compiler); bpf/Makefile builds the BPF object.
        .systemLibrary(name: "CVxmonABI", path: "bpf/include"),
        // Shims of the plain system calls Swift cannot make directly (setns, epoll, SIOCGIFNAME, ...):
        // a header of static inline functions, no library to link.
        .systemLibrary(name: "CVxmonSystem", path: "Sources/CVxmonSystem"),
        // libbpf's headers and the shims of what Swift cannot express of it; links libbpf and libelf.
        .systemLibrary(
            name: "CLibbpf", path: "Sources/CLibbpf", pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev"])]),
        // Packet views: one file per protocol, no dependencies, no Foundation.
        .target(name: "VxmonWire", swiftSettings: hotPath),
        // Event decoding, the model, renderers (text/JSON/YAML) and the recording format.
        .target(name: "VxmonCore", dependencies: ["VxmonWire"], swiftSettings: hotPath),
        // The live side without libbpf: the poll loop, live sinks, the agent's server and the stream
        // client of its sockets, threads, namespaces, locks, the lab's topology and paths.
        .target(name: "VxmonLive", dependencies: ["VxmonCore", "VxmonWire", "CVxmonSystem"]),
        // The libbpf boundary: the BPF object, maps, tc attachments, the perf and ring sources and the
        // live session that reads them.
        .target(name: "VxmonBPF", dependencies: ["VxmonLive", "VxmonCore", "CLibbpf", "CVxmonABI"]),
        // The lab: building and removing it, its agent and Hubble daemons, preflight checks, external
        // tools and the benchmark's traffic.
        .target(name: "VxmonLab", dependencies: ["VxmonBPF", "VxmonLive", "VxmonCore", "CVxmonSystem", "CVxmonABI"]),
        // The command line: every ArgumentParser command, and `Vxmon.parse`, which tests call in-process.
        .target(
            name: "VxmonCLI",
            dependencies: [
                "VxmonLab", "VxmonBPF", "VxmonLive", "VxmonCore", "VxmonWire", "CVxmonSystem", "CVxmonABI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // `vxmon`: its entry point only.
        .executableTarget(name: "vxmon", dependencies: ["VxmonCLI"]),
        // Hubble's API on the lab: the generated messages and services of proto/ (committed; see
        // scripts/gen-proto.sh), the per-node flow rings and the Observer, Peer and Health services.
        .target(
            name: "VxmonHubble",
            dependencies: [
                "VxmonCore", "VxmonLive", "VxmonLab",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            // Ingestion builds a message per flow: the generated messages' storage classes made the
            // dynamic exclusivity checks a fifth of its time (perf, 1M bulk events, release).
            swiftSettings: hotPath),
        // `vxmon-hubble`: a lab's observer servers (started by `vxmon lab up`, a client of its agent).
        .executableTarget(
            name: "vxmon-hubble",
            dependencies: [
                "VxmonHubble", "VxmonCore", "VxmonLive", "VxmonLab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/vxmon-hubble"),
        // Throughput/RSS benchmark of `vxmon replay` per mode (`make bench`); not a test.
        .executableTarget(name: "vxmon-bench", dependencies: ["VxmonCore", "VxmonLive"], path: "Sources/vxmon-bench"),
        // Fuzz targets for every parser of outside bytes (`make fuzz`: built with libFuzzer and ASan,
        // -D FUZZING); a normal build runs given inputs once.
        .executableTarget(name: "vxmon-fuzz", dependencies: ["VxmonCore"], path: "Sources/vxmon-fuzz"),
        .testTarget(name: "VxmonWireTests", dependencies: ["VxmonWire"]),
        .testTarget(name: "VxmonCoreTests", dependencies: ["VxmonCore", "VxmonLive", "VxmonWire", "CVxmonABI"]),
        .testTarget(name: "VxmonBPFTests", dependencies: ["VxmonLab", "VxmonBPF", "VxmonLive", "VxmonCore"]),
        .testTarget(
            name: "VxmonCLITests",
            dependencies: [
                "VxmonCLI", "VxmonCore", "VxmonLive", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "VxmonHubbleTests", dependencies: ["VxmonHubble", "VxmonCore", "VxmonLive"]),
    ]
)
