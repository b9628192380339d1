"""Command line: ``python -m cs231n_lib.data fetch cifar10 [--dir DIR]``.

A failure that the user can act on (no network, a checksum mismatch, a corrupt archive, a folder
that cannot be written) prints its message alone on stderr, without a traceback, and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from .fetch import fetch_cifar10
from .files import ENV_VAR, ChecksumError, CorruptDataError, data_dir

# What fetch_cifar10 raises with a message meant for the user (ConnectionError is an OSError).
USER_ERRORS = (OSError, ChecksumError, CorruptDataError)


def main(argv=None) -> int:
    """Parse the arguments and run the command; returns the exit status (1 on a failure)."""
    parser = argparse.ArgumentParser(prog="python -m cs231n_lib.data",
                                     description="Fetch data sets that are not embedded.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download, verify and extract a data set")
    fetch.add_argument("dataset", choices=["cifar10"])
    fetch.add_argument("--dir", default=None,
                       help=f"data directory (default: ${ENV_VAR}, else datasets/ beside the "
                            f"package: {data_dir()})")
    fetch.add_argument("--keep-archive", action="store_true",
                       help="keep the downloaded .tar.gz after extracting it")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        folder = fetch_cifar10(args.dir, keep_archive=args.keep_archive,
                               progress=not args.no_progress)
    except USER_ERRORS as e:
        print(e, file=sys.stderr)
        return 1
    print(f"CIFAR-10 is ready in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
