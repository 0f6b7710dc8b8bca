"""`python -m citycloud.dashboards --warehouse FILE [--port N] [--address A] [--contracts FILE]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from citycloud.dashboards import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citycloud.dashboards", description="Serve the operators' dashboard.")
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--contracts", type=Path, default=None)
    args = parser.parse_args(argv)
    return serve(args.warehouse, port=args.port, address=args.address, contracts=args.contracts)


if __name__ == "__main__":
    sys.exit(main())
