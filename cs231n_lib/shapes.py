"""Shape rules, in one place.

Every layer (naive and fast), the memory calculator and the notebooks call these functions, so
the output-size rule ``(W - F + 2P) / S + 1`` and the validation of hyperparameters exist once.

Conventions: ``pad`` is zero padding *per side* (CS231n's P); a non-integer output size is an
error, never a floor; ``dilation`` follows PyTorch (1 = a contiguous filter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral

CONV_PARAM_KEYS = frozenset({"stride", "pad", "dilation"})
POOL_PARAM_KEYS = frozenset({"pool_height", "pool_width", "stride"})
BN_PARAM_KEYS = frozenset({"mode", "eps", "momentum", "running_mean", "running_var"})
DROPOUT_PARAM_KEYS = frozenset({"p", "mode", "seed"})
MODES = ("train", "test")


def check_keys(params: Mapping, allowed: Iterable[str], name: str,
               required: Iterable[str] = ()) -> None:
    """Raise ValueError for an unknown or a missing key in a parameter dict."""
    if not isinstance(params, Mapping):
        raise ValueError(f"{name} must be a dict, got {type(params).__name__}")
    allowed = frozenset(allowed)
    unknown = sorted(set(params) - allowed, key=str)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {name}; allowed keys are {sorted(allowed)}")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"{name} is missing required key(s) {missing}")


def check_int(value, name: str, minimum: int) -> int:
    """Return ``value`` as int if it is an integer >= minimum, else raise ValueError."""
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, Integral)):
        # (a plain int skips the abstract-class check: every layer call validates a dozen)
        raise ValueError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def check_mode(mode, name: str) -> str:
    """Return ``mode`` if it is 'train' or 'test', else raise ValueError."""
    if mode not in MODES:
        raise ValueError(f"{name} mode={mode!r} must be one of {MODES}")
    return mode


def _window_span(size, field, stride, pad, dilation, axis):
    """Validate a sliding window; return (size, stride, pad, F_eff, size + 2P - F_eff)."""
    size = check_int(size, axis, 1)
    field = check_int(field, f"filter size along {axis}", 1)
    stride = check_int(stride, "stride", 1)
    pad = check_int(pad, "pad", 0)
    dilation = check_int(dilation, "dilation", 1)
    eff = dilation * (field - 1) + 1
    padded = size + 2 * pad
    if eff > padded:
        raise ValueError(
            f"filter size {eff} along {axis} is larger than the padded input "
            f"{axis}={size} + 2*{pad} = {padded}")
    return size, stride, pad, eff, padded - eff


def output_size(size: int, field: int, stride: int = 1, pad: int = 0, dilation: int = 1,
                axis: str = "W") -> int:
    """Output length of a sliding window: ``(size - F_eff + 2P) / S + 1``.

    ``F_eff = dilation * (field - 1) + 1``. Raises ValueError when the stride is < 1, the pad is
    negative, the window is larger than the padded input, or the result is not an integer.
    """
    size, stride, pad, eff, span = _window_span(size, field, stride, pad, dilation, axis)
    if span % stride:
        raise ValueError(
            f"stride={stride} does not tile {axis}={size} with pad={pad} and filter size "
            f"{eff}: ({size} - {eff} + 2*{pad}) / {stride} + 1 = {span / stride + 1:g} "
            "is not an integer")
    return span // stride + 1


ROUNDINGS = ("exact", "floor", "ceil")


def output_size_rounded(size: int, field: int, stride: int = 1, pad: int = 0, dilation: int = 1,
                        axis: str = "W", rounding: str = "exact") -> int:
    """Output length under an explicit rounding rule, for describing other frameworks' models.

    ``"exact"`` is :func:`output_size` (a non-integer is an error). ``"floor"`` is PyTorch's
    default and ``"ceil"`` its ``ceil_mode=True`` (a last window that would start in the right
    padding is dropped). Only the architecture specs that reproduce torchvision/Caffe models use
    floor/ceil, each with a comment saying why; the layers themselves always use the exact rule.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} must be one of {ROUNDINGS}")
    if rounding == "exact":
        return output_size(size, field, stride, pad, dilation, axis)
    size, stride, pad, _, span = _window_span(size, field, stride, pad, dilation, axis)
    if rounding == "floor":
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


def conv_geometry(x_shape, w_shape, conv_param: Mapping):
    """Validate a convolution and return ``(stride, pad, dilation, H_out, W_out)``.

    x_shape is (N, C, H, W); w_shape is (F, C, HH, WW). Raises ValueError naming the value and
    the rule for a bad rank, a channel mismatch, an unknown key in conv_param, a bad stride or
    pad, or a non-integer output size.
    """
    check_keys(conv_param, CONV_PARAM_KEYS, "conv_param")
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ValueError(f"w must be 4-D (F, C, HH, WW), got shape {tuple(w_shape)}")
    _, C, H, W = x_shape
    _, Cw, HH, WW = w_shape
    if C != Cw:
        raise ValueError(
            f"channel mismatch: x has C={C} channels but w expects C={Cw} "
            f"(x shape {tuple(x_shape)}, w shape {tuple(w_shape)})")
    stride = check_int(conv_param.get("stride", 1), "stride", 1)
    pad = check_int(conv_param.get("pad", 0), "pad", 0)
    dilation = check_int(conv_param.get("dilation", 1), "dilation", 1)
    H_out = output_size(H, HH, stride, pad, dilation, axis="H")
    W_out = output_size(W, WW, stride, pad, dilation, axis="W")
    return stride, pad, dilation, H_out, W_out


def pool_geometry(x_shape, pool_param: Mapping):
    """Validate a pooling layer and return ``(pool_height, pool_width, stride, H_out, W_out)``.

    pool_param holds pool_height, pool_width and stride (all required). Windows may overlap
    (stride < pool size); they must tile the input exactly.
    """
    check_keys(pool_param, POOL_PARAM_KEYS, "pool_param", required=sorted(POOL_PARAM_KEYS))
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    ph = check_int(pool_param["pool_height"], "pool_height", 1)
    pw = check_int(pool_param["pool_width"], "pool_width", 1)
    stride = check_int(pool_param["stride"], "stride", 1)
    _, _, H, W = x_shape
    H_out = output_size(H, ph, stride, 0, axis="H")
    W_out = output_size(W, pw, stride, 0, axis="W")
    return ph, pw, stride, H_out, W_out


def same_pad(field: int) -> int:
    """Zero padding per side that keeps the size at stride 1: ``(F - 1) / 2`` for odd F."""
    field = check_int(field, "filter size", 1)
    if field % 2 == 0:
        raise ValueError(f"same padding needs an odd filter size, got F={field}")
    return (field - 1) // 2
