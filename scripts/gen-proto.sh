#!/bin/sh
# Regenerates Sources/VxmonHubble/Generated from proto/ (run after changing a .proto; the output is
# committed, so neither builds nor CI need protoc or the generator plugins).
#
#   scripts/gen-proto.sh PLUGIN_DIR
#
# PLUGIN_DIR holds protoc-gen-swift (swift-protobuf 1.39) and protoc-gen-grpc-swift-2
# (grpc-swift-protobuf 2.4), e.g. built once with `swift build -c release --product ...` in a scratch
# package depending on both. protoc is grpcio-tools' (pip), which carries the well-known types.
set -eu
plugins=${1:?usage: scripts/gen-proto.sh PLUGIN_DIR}
cd "$(dirname "$0")/.."
out=Sources/VxmonHubble/Generated
rm -f "$out"/*.swift
protos=$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd proto && python3 -m grpc_tools.protoc -I . \
	--plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
	--plugin=protoc-gen-grpc-swift="$plugins/protoc-gen-grpc-swift-2" \
	--swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores --swift_out="../$out" \
	--grpc-swift_opt=Visibility=Public --grpc-swift_opt=FileNaming=PathToUnderscores \
	--grpc-swift_opt=Client=true --grpc-swift_opt=Server=true --grpc-swift_out="../$out" \
	$protos)
# Protos without services give a .grpc.swift with nothing in it.
for f in "$out"/*.grpc.swift; do grep -q ServiceDescriptor "$f" || rm "$f"; done
ls "$out"
