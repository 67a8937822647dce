#!/usr/bin/env bash
# Generates the Swift protobuf and gRPC code from Protos/ and writes it into the source tree.
# The generated files are committed: CI never builds protoc or its plugins.
#
# Versions: protoc 3.21 (Debian's protobuf-compiler), protoc-gen-swift from swift-protobuf
# 1.39.0, protoc-gen-grpc-swift-2 from grpc-swift-protobuf 2.4.1 (Tools/protoc-plugins pins both).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v protoc >/dev/null || apt-get install -y protobuf-compiler
(cd Tools/protoc-plugins && swift build -c release --product protoc-gen-swift \
  && swift build -c release --product protoc-gen-grpc-swift-2)
bin=$(cd Tools/protoc-plugins && swift build -c release --show-bin-path)

gen() { # proto, output dir, visibility
  mkdir -p "$2"
  protoc -I Protos "$1" \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --swift_out="$2" --swift_opt=Visibility="$3",FileNaming=DropPath \
    --grpc-swift-2_out="$2" --grpc-swift-2_opt=Visibility="$3",FileNaming=DropPath
}
gen link.proto Sources/NodeCommGRPC/Generated Internal
gen bench_echo.proto Sources/EasyRemoteBench/Generated Internal
echo "generated with $(protoc --version)"
