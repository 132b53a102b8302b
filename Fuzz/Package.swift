// swift-tools-version: 6.0
// libFuzzer targets for amct-pipe, a package of their own so the main build never compiles them. Built by
// `make fuzz` (see ../Makefile) with `-sanitize=fuzzer`: libFuzzer supplies `main` and drives
// `LLVMFuzzerTestOneInput` in each target.
import PackageDescription

let package = Package(
    name: "amct-pipe-fuzz",
    dependencies: [.package(name: "amct-pipe", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "FuzzONNX", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzConfig", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzNumpy", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzPlan", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzPrepare", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzCheckpoint", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
        .executableTarget(name: "FuzzCaffe", dependencies: ["CLibFuzzer", .product(name: "AMCTPipe", package: "amct-pipe")]),
    ],
    swiftLanguageModes: [.v6]
)
