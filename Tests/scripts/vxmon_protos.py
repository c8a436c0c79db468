"""vxmon's .proto files compiled for Python by grpcio-tools' protoc (messages and gRPC stubs), into a
temporary directory put first on sys.path: what the test scripts use as an independent client."""
import os
import subprocess
import sys
import tempfile


def compile_protos(proto_dir):
    out = tempfile.mkdtemp(prefix="vxmon-grpc-")
    protos = [os.path.relpath(os.path.join(root, f), proto_dir)
              for root, _, files in os.walk(proto_dir, followlinks=True) for f in files if f.endswith(".proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", out,
                    "--grpc_python_out", out, *protos], check=True)
    sys.path.insert(0, out)
