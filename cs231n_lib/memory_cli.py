"""Command line of ``cs231n_lib.memory``: one architecture's table, totals and largest batch.

    cs231n-memory vgg16 --batch 32 --optimizer adam --budget 16384

(``python -m cs231n_lib.memory_cli ...`` is the same command; the accounting module itself has
no command line, so importing it loads no argparse.)
"""

from __future__ import annotations

import argparse
import json
import sys

from cs231n_lib import architectures as arch
from cs231n_lib.memory import MIB, OPTIMIZER_STATE, format_table, max_batch, summary


def _parse_input(text: str) -> tuple:
    """``"3x224x224"`` -> ``(3, 224, 224)`` (ValueError unless three positive integers)."""
    try:
        shape = tuple(int(s) for s in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"--input {text!r} must look like 3x224x224") from err
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input {text!r} must be CxHxW with positive sizes")
    return shape


def _parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(prog="cs231n-memory",
                                     description="Memory accounting for a named architecture.")
    parser.add_argument("name", choices=sorted(arch.REGISTRY))
    parser.add_argument("--input", help="input shape CxHxW (default: the spec's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZER_STATE))
    parser.add_argument("--budget", type=float, metavar="MIB",
                        help="also print the largest batch that fits this many MiB")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv=None) -> int:
    """``cs231n-memory NAME [--input 3x224x224] [--batch N] ...``."""
    args = _parser().parse_args(argv)
    spec = arch.get(args.name)
    try:
        if args.input:
            spec = spec.with_input(_parse_input(args.input))
        result = summary(spec, args.batch, args.dtype, args.optimizer)
        if args.budget is not None:
            budget = int(args.budget * MIB)
            result["budget_bytes"] = budget
            for mode in ("train", "test"):
                result[f"max_batch_{mode}"] = max_batch(spec, budget, args.dtype,
                                                        args.optimizer, mode)
        if args.json:
            print(json.dumps(result))
        else:
            print(format_table(spec, args.batch, args.dtype, args.optimizer))
            if args.budget is not None:
                print(f"largest batch in {args.budget:g} MiB: training "
                      f"{result['max_batch_train']}, inference {result['max_batch_test']}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
