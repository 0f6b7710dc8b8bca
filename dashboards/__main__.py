"""`python -m citycloud.dashboards --warehouse FILE [--port N] [--address A] [--contracts FILE] [--access FILE]
[--access-log FILE]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from citycloud.config import CitycloudError
from citycloud.dashboards import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citycloud.dashboards", description="Serve the operators' dashboard.")
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--contracts", type=Path, default=None)
    parser.add_argument("--access", type=Path, default=None)
    parser.add_argument("--access-log", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        return serve(args.warehouse, port=args.port, address=args.address, contracts=args.contracts,
                     access=args.access, access_log=args.access_log)
    except CitycloudError as exc:
        print(f"citycloud dashboard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
