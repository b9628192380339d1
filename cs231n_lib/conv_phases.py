"""Phases of a strided convolution along one axis, for the fast layers' layouts.

With stride S, padded pixel p of an axis is in phase p % S, at index p // S of its phase (a
*phase plane* in 2-D). Filter tap t (dilation d) of output o reads padded pixel o * S + t * d:
phase (t * d) % S, index o + (t * d) // S. So the taps of one phase read one plane, each a fixed
shift of the output grid: the gemm path's columns are runs of the planes (``gemm_conv``), and
the input gradient of a phase's pixels is a stride-1 correlation of dout (``conv_dx``).
"""

from __future__ import annotations

from math import gcd


def phase_groups(taps: int, dilation: int, stride: int):
    """The taps 0..taps-1 along one axis grouped by phase ``(t * dilation) % stride``:
    [(phase, slice of the group's taps, plane index of its first tap, plane indices between
    consecutive taps)]. A group's taps are equally spaced (step stride / gcd(dilation, stride)),
    and so are their plane indices (dilation / gcd)."""
    step = stride // gcd(dilation, stride)
    groups = []
    for first in range(min(step, taps)):
        groups.append(((first * dilation) % stride, slice(first, taps, step),
                       (first * dilation) // stride, step * dilation // stride))
    return groups


def phase_span(phase: int, size: int, stride: int, pad: int):
    """Input pixels along an axis of ``size`` pixels that fall in phase ``phase`` once padded
    (padded index % stride == phase): (first pixel, its plane index, count)."""
    first = (phase - pad) % stride
    count = max(0, -(-(size - first) // stride))
    return first, (first + pad) // stride, count
