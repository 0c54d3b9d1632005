"""A state consumer written with Python's grpcio, knowing Passerelle only by its .proto files.

Generates stubs from the repository's proto/ directory with grpcio-tools (its bundled protoc),
then, over mutual TLS with a consumer certificate, calls the hub's standard health service and
the statistics table asked for, and prints one JSON document on stdout:

    {"health": {"": "SERVING", "passerelle.v1.StatisticsService": "SERVING"},
     "table": {"table": ..., "by": [...], "period": ..., "rules": [...], "cells": [...]}}

Used by tests/tests/interop.rs; runnable by hand against any hub:

    python consumer.py --target localhost:7501 --ca ca.pem --cert consumer.pem --key consumer.key \
        --proto-dir proto --table indicators --by departement --period 2026-Q3
"""

import argparse
import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

# The standard health checking protocol (grpc/grpc doc/health-checking.md), which every
# Passerelle listener serves; written here so the test needs no other package.
HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"""


def generate_stubs(proto_dir: pathlib.Path, out: pathlib.Path) -> None:
    """Compiles the repository's protos and the health proto into importable modules in `out`."""
    # Under `probe/`, not `grpc/health/v1/`: the module must not shadow grpcio's own `grpc` package.
    extra = out / "protos"
    (extra / "probe").mkdir(parents=True)
    (extra / "probe" / "health.proto").write_text(HEALTH_PROTO)
    sources = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.glob("passerelle/v1/*.proto"))
    if not sources:
        sys.exit(f"no .proto files under {proto_dir}/passerelle/v1")
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    for root, files in ((proto_dir, sources), (extra, ["probe/health.proto"])):
        code = protoc.main(
            ["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
        )
        if code != 0:
            sys.exit(f"protoc failed ({code}) on {files}")
    sys.path.insert(0, str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the hub's mutual-TLS listener")
    parser.add_argument("--ca", required=True, help="the network CA certificate (PEM)")
    parser.add_argument("--cert", required=True, help="the consumer certificate (PEM)")
    parser.add_argument("--key", required=True, help="the consumer private key (PEM)")
    parser.add_argument("--proto-dir", required=True, help="the repository's proto/ directory")
    parser.add_argument("--table", default="indicators")
    parser.add_argument("--by", action="append", default=[])
    parser.add_argument("--period", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        generate_stubs(pathlib.Path(args.proto_dir).resolve(), out)
        health_pb2 = importlib.import_module("probe.health_pb2")
        health_grpc = importlib.import_module("probe.health_pb2_grpc")
        hub_pb2 = importlib.import_module("passerelle.v1.hub_pb2")
        hub_grpc = importlib.import_module("passerelle.v1.hub_pb2_grpc")

        credentials = grpc.ssl_channel_credentials(
            root_certificates=pathlib.Path(args.ca).read_bytes(),
            private_key=pathlib.Path(args.key).read_bytes(),
            certificate_chain=pathlib.Path(args.cert).read_bytes(),
        )
        with grpc.secure_channel(args.target, credentials) as channel:
            health = health_grpc.HealthStub(channel)
            statuses = {}
            for service in ("", "passerelle.v1.StatisticsService"):
                answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            stats = hub_grpc.StatisticsServiceStub(channel)
            table = stats.GetTable(
                hub_pb2.GetTableRequest(table=args.table, by=args.by, period=args.period), timeout=10
            )
        cells = [
            {
                "key": list(cell.key),
                "total": cell.total,
                "structures": cell.structures if cell.HasField("structures") else None,
                "suppressed": cell.suppressed,
                "measures": {
                    m.name: (m.value if m.HasField("value") else None) for m in cell.measures
                },
            }
            for cell in table.cells
        ]
        print(
            json.dumps(
                {
                    "health": statuses,
                    "table": {
                        "table": table.table,
                        "by": list(table.by),
                        "period": table.period,
                        "rules": list(table.rules),
                        "cells": cells,
                    },
                }
            )
        )


if __name__ == "__main__":
    main()
