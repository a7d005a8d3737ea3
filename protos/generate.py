"""Generate the Python stubs for protos/bridge/v1/*.proto into bridge/v1/.

Run after editing the proto:  python protos/generate.py
tests/test_protos.py regenerates into a temporary folder and fails if the
committed stubs differ, so the stubs never drift from the contract.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTOS = Path(__file__).resolve().parent
ROOT = PROTOS.parent


def generate(out_root: Path) -> list[Path]:
    """Write bridge/v1/*_pb2*.py under ``out_root``; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted((PROTOS / "bridge" / "v1").glob("*.proto"))
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *map(str, sources),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return sorted((out_root / "bridge" / "v1").glob("*_pb2*.py*"))


if __name__ == "__main__":
    written = generate(ROOT)
    print("\n".join(str(p.relative_to(ROOT)) for p in written))
    sys.exit(0)
