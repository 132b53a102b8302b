// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "amct-pipe",
    products: [
        .executable(name: "amct-pipe", targets: ["amct-pipe"]),
        // The runnable library example: the default compress pipeline with a user-written pass inserted.
        .executable(name: "custom-pipeline", targets: ["custom-pipeline"]),
        // The library others link: the IR, the kernels and the passes.
        .library(name: "AMCTPipe", targets: ["Graph", "Kernels", "Passes"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // The protobuf-c runtime, from Debian's libprotobuf-c-dev.
        .systemLibrary(
            name: "CProtobufC",
            path: "Sources/CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // OpenBLAS (Debian libopenblas-dev): the GEMM under the calibration executor.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // zlib (Debian zlib1g-dev): inflate for .npz calibration data.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libjpeg-turbo (Debian libturbojpeg0-dev) and libpng (libpng-dev): decoding images of data sources.
        .systemLibrary(
            name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // MPI (Debian libopenmpi-dev; pkg-config's mpi-c): data-parallel retraining under mpirun. shim.h wraps the
        // macros of mpi.h in plain functions.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "mpi-c", providers: [.apt(["libopenmpi-dev"])]),
        // glibc's malloc.h (mallopt): the allocator policy of retraining (Passes/Training/AllocatorPolicy.swift).
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        // C that protoc-c generates from proto/*.proto (scripts/gen-proto); committed, never edited.
        .target(
            name: "CProtoSchemas",
            dependencies: ["CProtobufC"],
            path: "Sources/CProtoSchemas"
        ),
        .target(
            name: "Graph",
            dependencies: [
                "CProtoSchemas", "CProtobufC", "CZlib",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        .target(name: "Kernels", dependencies: ["Graph", "COpenBLAS"]),
        .target(
            name: "Passes",
            dependencies: [
                "Graph", "Kernels", "CTurboJPEG", "CPNG", "CMPI", "CMalloc",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "amct-pipe",
            dependencies: ["Passes", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "custom-pipeline", dependencies: ["Passes"], path: "Examples/CustomPipeline"),
        // `mpirun -np N allreduce-bench COUNT…`: one gradient all-reduce's time (bench/allreduce.py, README).
        .executableTarget(name: "allreduce-bench", dependencies: ["Passes"], path: "bench/AllreduceBench"),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "CProtoSchemas", "CProtobufC"]),
        .testTarget(name: "PassesTests", dependencies: ["Passes", "Graph", "Kernels"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
    ],
    swiftLanguageModes: [.v6]
)
