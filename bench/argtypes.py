"""Argument types the benchmarks' command lines share: a value argparse cannot use is refused
with its usage message, naming the value and the rule, before anything runs (not taken as the
default, nor left to fail deep inside a run)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (rounds, images, students, workers)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def multiple_of(k: int):
    """The type of an integer >= k that is a multiple of k (an image size that k x k of
    pooling divides)."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value % k:
            raise argparse.ArgumentTypeError(f"{text!r} is not a multiple of {k}")
        return value

    parse.__name__ = f"multiple of {k}"  # (argparse names the type in some messages)
    return parse
