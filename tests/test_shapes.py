"""Shape rules: the output-size examples of the CS231n notes, same padding, AlexNet's 224 vs 227,
and the validation of parameter dicts."""

import numpy as np
import pytest

from cs231n_lib import shapes

# (W, F, S, P) -> output size, from the notes (see course-content.md)
VALID = {
    "7x7 F3 S1": ((7, 3, 1, 0), 5),
    "7x7 F3 S2": ((7, 3, 2, 0), 3),
    "W5 F3 P1 S1": ((5, 3, 1, 1), 5),
    "W5 F3 P1 S2": ((5, 3, 2, 1), 3),
    "notes walk-through W11 F5 S2": ((11, 5, 2, 0), 4),
    "AlexNet conv1 227": ((227, 11, 4, 0), 55),
    "VGG 3x3 same": ((224, 3, 1, 1), 224),
    "pool 2x2 s2": ((224, 2, 2, 0), 112),
    "overlapping pool F3 S2": ((55, 3, 2, 0), 27),
}


@pytest.mark.parametrize("args, expected", VALID.values(), ids=VALID.keys())
def test_output_size_examples(args, expected):
    W, F, S, P = args
    assert shapes.output_size(W, F, stride=S, pad=P) == expected
    assert (W - F + 2 * P) / S + 1 == expected  # the notes' formula, by hand


# (W, F, S, P) -> the non-integer the message must show
INVALID = {
    "W5 F3 P1 S3": ((5, 3, 3, 1), "2.33333"),
    "constraints on strides W10 F3 S2": ((10, 3, 2, 0), "4.5"),
    "AlexNet paper 224": ((224, 11, 4, 0), "54.25"),
}


@pytest.mark.parametrize("args, value", INVALID.values(), ids=INVALID.keys())
def test_output_size_rejects_a_non_integer_and_shows_it(args, value):
    W, F, S, P = args
    assert (W - F + 2 * P) / S + 1 != int((W - F + 2 * P) / S + 1)
    with pytest.raises(ValueError, match="is not an integer") as info:
        shapes.output_size(W, F, stride=S, pad=P)
    assert f"= {value} " in str(info.value)
    assert f"stride={S}" in str(info.value)


def test_output_size_with_dilation_uses_the_effective_filter():
    # dilation 2 spreads a 3-tap filter over 5 pixels
    assert shapes.output_size(7, 3, dilation=2) == 3
    assert shapes.output_size(7, 3, dilation=2, pad=2) == 7
    with pytest.raises(ValueError, match="filter size 7 along W is larger"):
        shapes.output_size(5, 3, dilation=3)


@pytest.mark.parametrize("F", [1, 3, 5, 7, 11])
def test_same_pad_keeps_the_size_at_stride_1(F):
    P = shapes.same_pad(F)
    assert P == (F - 1) // 2
    for W in (F, 13, 32):
        assert shapes.output_size(W, F, stride=1, pad=P) == W


def test_same_pad_rejects_an_even_filter():
    with pytest.raises(ValueError, match="F=4"):
        shapes.same_pad(4)


BAD_ARGS = {
    "negative pad": ({"pad": -1}, r"pad=-1 must be >= 0"),
    "stride 0": ({"stride": 0}, r"stride=0 must be >= 1"),
    "float stride": ({"stride": 2.0}, r"stride=2\.0 must be an integer"),
    "bool pad": ({"pad": True}, r"pad=True must be an integer"),
    "dilation 0": ({"dilation": 0}, r"dilation=0"),
    "filter larger than padded input": ({"pad": 0, "field": 9}, r"filter size 9 .* = 7"),
}


@pytest.mark.parametrize("kwargs, match", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_output_size_rejects_bad_arguments(kwargs, match):
    kwargs = {"field": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        shapes.output_size(7, **kwargs)


def test_numpy_integers_are_accepted():
    assert shapes.output_size(np.int64(7), np.int32(3), stride=np.int64(2)) == 3
    assert isinstance(shapes.check_int(np.int64(4), "n", 0), int)


def test_check_keys_rejects_unknown_and_missing_keys():
    shapes.check_keys({"stride": 1}, shapes.CONV_PARAM_KEYS, "conv_param")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['padding'\] in conv_param"):
        shapes.check_keys({"padding": 1}, shapes.CONV_PARAM_KEYS, "conv_param")
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['stride'\]"):
        shapes.check_keys({}, shapes.POOL_PARAM_KEYS, "pool_param", required=["stride"])
    with pytest.raises(ValueError, match="must be a dict, got list"):
        shapes.check_keys([], shapes.CONV_PARAM_KEYS, "conv_param")


def test_check_mode():
    assert shapes.check_mode("train", "bn_param") == "train"
    assert shapes.check_mode("test", "bn_param") == "test"
    with pytest.raises(ValueError, match="bn_param mode='eval'"):
        shapes.check_mode("eval", "bn_param")


def test_conv_geometry():
    assert shapes.conv_geometry((2, 3, 227, 227), (96, 3, 11, 11), {"stride": 4}) == (
        4, 0, 1, 55, 55)
    # non-square: H and W are checked separately, defaults stride 1, pad 0, dilation 1
    assert shapes.conv_geometry((1, 1, 7, 6), (1, 1, 5, 3), {}) == (1, 0, 1, 3, 4)
    with pytest.raises(ValueError, match=r"x has C=3 channels but w expects C=4"):
        shapes.conv_geometry((1, 3, 5, 5), (2, 4, 3, 3), {})
    with pytest.raises(ValueError, match=r"does not tile H=10"):
        shapes.conv_geometry((1, 1, 10, 9), (1, 1, 3, 3), {"stride": 2})
    with pytest.raises(ValueError, match=r"w must be 4-D"):
        shapes.conv_geometry((1, 1, 5, 5), (3, 3), {})


def test_pool_geometry():
    param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    assert shapes.pool_geometry((1, 96, 55, 55), param) == (3, 3, 2, 27, 27)
    with pytest.raises(ValueError, match=r"4\.5"):
        shapes.pool_geometry((1, 1, 10, 10), param)
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['pool_width'\]"):
        shapes.pool_geometry((1, 1, 4, 4), {"pool_height": 2, "stride": 2})
