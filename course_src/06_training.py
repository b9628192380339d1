# Source of assignments/06_training/06_training.ipynb (build: python course_src/build.py).

# %% [markdown]
# # 6. Training a ConvNet
#
# Everything comes together: the library's layers (whose naive versions you wrote in notebooks
# 1 to 3), a small convolutional network, and the `Solver` that trains it with minibatch
# gradient descent. You run the sanity checks that catch most bugs before any long training run
# (the initial loss, a gradient check of the whole network, overfitting a tiny training set),
# train on real images (a 5,000-image subset of Fashion-MNIST that ships with the course), look
# at learning curves, first-layer filters and feature maps, write spatial batch normalisation,
# and end with the comparison the notes raise: max pooling or an all-convolutional network?
#
# **How to work.** Write your code between the lines that say `# YOUR CODE HERE` (remove the
# `raise NotImplementedError()`), run the test cell below each exercise, and fix what its message
# reports (type, then shape, then values). Test cells are read-only. The grader runs further,
# hidden tests; passing the visible tests is necessary, not sufficient. Write your answers to the
# written questions in the cells marked "YOUR ANSWER HERE".
#
# **Training budget.** Cells that train read their size from `cs231n_lib.budget`: on your
# machine they use the full budget below; under the grader (environment variable
# `CS231N_GRADING=1`) a small one, so that the whole notebook runs in about a minute on 2 cores.
# The tests check outcomes that hold under the small budget (the loss falls, the accuracy is
# well above chance), so they hold a fortiori under the full one.
#
# | Part | Topic | Points |
# |---|---|---|
# | 1 | Sanity checks: initial loss and a gradient check of the whole network | 5 |
# | 2 | Overfitting a small training set | 3 |
# | 3 | Training on Fashion-MNIST; learning curves | 5 |
# | 4 | First-layer filters and feature maps | 2 |
# | 5 | Spatial batch normalisation | 6 |
# | 6 | Max pooling vs an all-convolutional network | 5 |
#
# **Total: 26 points**
#
# **Conventions** (the whole course): NCHW tensors; `pad` is zero padding per side; the Solver's
# contract is in its docstring (`help(Solver)`). Terms of the Chinese notes: see the
# [glossary of notebook 1](../01_convolution/01_convolution.ipynb#Glossary).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib import layers
from cs231n_lib.budget import budget, grading_mode, training_budget
from cs231n_lib.checks import assert_array, assert_value, record
from cs231n_lib.classifiers.cnn import ThreeLayerConvNet
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.data import load_dataset
from cs231n_lib.demo import prepare_data
from cs231n_lib.fast_layers import conv_forward_fast
from cs231n_lib.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)
from cs231n_lib.layer_utils import conv_relu_forward
from cs231n_lib.solver import Solver
from cs231n_lib.vis_utils import plot_feature_maps, plot_filters, plot_grid

plt.rcParams["figure.figsize"] = (9, 3.5)

# The budget of this notebook: full (your machine) and graded (CS231N_GRADING=1).
NUM_TRAIN = budget(full=5000, graded=1000)   # training images used
EPOCHS = budget(full=4, graded=1)            # passes over them in part 3
COMPARE_EPOCHS = budget(full=3, graded=1)    # passes in the comparisons of parts 5 and 6
BN_TRAIN = budget(full=5000, graded=500)     # training images in the comparison of part 5
MAX_SECONDS = training_budget(full_seconds=300, graded_seconds=60)  # cap per training run
print(f"grading mode: {grading_mode()}; {NUM_TRAIN} training images, {EPOCHS} epoch(s) in "
      f"part 3, at most {MAX_SECONDS:.0f} s per training run")

# %% [markdown]
# The data: Fashion-MNIST, 28 x 28 grey images of 10 kinds of clothing (Zalando, MIT licence),
# a class-balanced subset of 5,000 training, 1,000 validation and 1,000 test images.
# `prepare_data` subtracts the mean training image and scales the pixels to about [-1, 1].

# %%
data = prepare_data("fashion_small", num_training=NUM_TRAIN)
for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
    print(f"{key:>8}: {data[key].shape} {data[key].dtype}")
class_names = list(data["class_names"])
num_classes = len(class_names)
examples = np.concatenate([data["X_train"][data["y_train"] == c][:10] for c in range(10)])
shown = examples - examples.min(axis=(1, 2, 3), keepdims=True)
plot_grid(shown / shown.max(axis=(1, 2, 3), keepdims=True),
          title="10 training images per class, one class per row:\n" + ", ".join(class_names))
plt.show()

# %% [markdown]
# ## 1. Sanity checks: initial loss and a gradient check of the whole network (5 points)
#
# The model is `ThreeLayerConvNet`: conv - relu - 2x2 max pool - affine - relu - affine -
# softmax. Two checks before training:
#
# * **Initial loss.** With small random weights all scores are nearly equal, so the softmax gives
#   each of the C classes probability about 1/C and the loss is about -ln(1/C) = ln C (2.303 for
#   10 classes). A very different value points to a bug in the loss or the initialisation.
# * **Gradient check.** Compare every analytic gradient with a centred difference, in float64
#   on a tiny input, with no regularisation first. For a whole network with small weights,
#   relative errors below about 1e-4 are fine; W1 is usually the worst, because its gradient
#   passes through every ReLU and max-pool "kink" (a perturbation that crosses one spoils the
#   centred difference), and small weights mean small gradients.
#
# **Exercise.** Write `sanity_checks(model, X, y)`: the loss of `model` on (X, y), the expected
# initial loss ln C (C = the number of scores the model outputs), and for every parameter
# name the relative error between `model.loss`'s gradient and
# `eval_numerical_gradient(f, model.params[name])` (import done above; use `rel_error`).

# %% solution: sanity_checks
def sanity_checks(model, X, y):
    """
    The initial-loss and gradient checks of a model meeting the Solver's contract.

    Returns a dict with keys:
    - "loss": float, model.loss(X, y)[0]
    - "expected_loss": float, ln(number of classes)
    - "rel_errors": dict parameter name -> float relative error of its analytic gradient
    """
    ### BEGIN SOLUTION
    loss, grads = model.loss(X, y)
    num_classes = model.loss(X[:1]).shape[1]  # scores of one example: (1, C)
    errors = {}
    for name in sorted(model.params):
        numeric = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name])
        errors[name] = float(rel_error(grads[name], numeric))
    return {"loss": float(loss), "expected_loss": float(np.log(num_classes)),
            "rel_errors": errors}
    ### END SOLUTION


# %% tests: test_sanity_checks (3 points)
"""sanity_checks on a tiny float64 ThreeLayerConvNet: loss near ln 10, small gradient errors."""
rng = np.random.default_rng(1)
X_tiny, y_tiny = rng.standard_normal((2, 1, 8, 8)), rng.integers(0, 10, size=2)
tiny = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                         num_classes=10, weight_scale=1e-2, dtype=np.float64, seed=1)
checks = sanity_checks(tiny, X_tiny, y_tiny)
record("sanity_loss", checks["loss"], rtol=1e-8)
record("sanity_expected", checks["expected_loss"], rtol=1e-12)
worst = max(checks["rel_errors"].values())
record("sanity_worst_error", worst, kind="at_most", bound=1e-4)
assert_value("parameters checked", sorted(checks["rel_errors"]), sorted(tiny.params))
assert_value("expected loss", checks["expected_loss"], float(np.log(10)), rel_tol=1e-12)
assert abs(checks["loss"] - np.log(10)) < 0.05, f"initial loss {checks['loss']:.4f}"
assert worst < 1e-4, f"worst relative error {worst:.2e}"
for name, err in checks["rel_errors"].items():
    print(f"{name}: relative error {err:.2e}")
print(f"initial loss {checks['loss']:.4f}, ln 10 = {np.log(10):.4f}")

# %% tests: test_sanity_checks_hidden (2 points)
"""sanity_checks with regularisation and another shape (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(61)
X_h, y_h = rng.standard_normal((3, 2, 6, 6)), rng.integers(0, 4, size=3)
model_h = ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=2, filter_size=3, hidden_dim=5,
                            num_classes=4, weight_scale=1e-1, reg=0.1, dtype=np.float64,
                            seed=1)
checks_h = sanity_checks(model_h, X_h, y_h)
record("sanity_hidden_loss", checks_h["loss"], rtol=1e-8)
record("sanity_hidden_expected", checks_h["expected_loss"], rtol=1e-12)
record("sanity_hidden_names", sorted(checks_h["rel_errors"]), kind="equal")
record("sanity_hidden_worst", max(checks_h["rel_errors"].values()), kind="at_most", bound=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Overfitting a small training set (3 points)
#
# A model that can learn should fit 50 training images perfectly (or nearly) within 20 epochs
# (the test's setting, 40 steps of a batch of 25):
# high training accuracy, low validation accuracy. If it cannot, something is wrong with the
# model, the gradients or the learning rate, and training on all the data would waste time.
#
# **Exercise.** Write `overfit_small_data(data, num_train, num_epochs, seed)`: a
# `ThreeLayerConvNet` (seeded with `seed`) trained by a `Solver` (also seeded) on the first
# `num_train` training images only (a few validation images suffice here). Choose the model
# size and the optimizer settings yourself (hint: Adam with a learning rate of about 2e-3 and a
# batch of 25 work). Return the solver after `train()`; the test reads the best training
# accuracy in its `train_acc_history`.

# %% solution: overfit_small_data
def overfit_small_data(data, num_train, num_epochs, seed=0):
    """Train a ThreeLayerConvNet on data's first num_train training images; return the Solver."""
    ### BEGIN SOLUTION
    small = {"X_train": data["X_train"][:num_train], "y_train": data["y_train"][:num_train],
             "X_val": data["X_val"][:100], "y_val": data["y_val"][:100]}  # a quick val estimate
    model = ThreeLayerConvNet(input_dim=data["X_train"].shape[1:], num_filters=16,
                              filter_size=5, hidden_dim=100, num_classes=10, weight_scale=1e-2,
                              seed=seed)
    solver = Solver(model, small, update_rule="adam", optim_config={"learning_rate": 2e-3},
                    num_epochs=num_epochs, batch_size=25, seed=seed, verbose=False,
                    time_budget=MAX_SECONDS)
    return solver.train()
    ### END SOLUTION


# %% tests: test_overfit_small_data (3 points)
"""overfit_small_data: 50 images, 20 epochs, training accuracy at least 0.9."""
overfit = overfit_small_data(data, num_train=50, num_epochs=20, seed=0)
train_acc = max(overfit.train_acc_history)  # the Solver keeps the best-validation parameters
record("overfit_train_acc", train_acc, kind="at_least", bound=0.9)
record("overfit_loss_fell", bool(np.mean(overfit.loss_history[-4:]) <
                                 0.5 * np.mean(overfit.loss_history[:4])), kind="equal")
assert train_acc >= 0.9, f"training accuracy {train_acc:.2f} < 0.9 on 50 images"
print(f"training accuracy {train_acc:.2f}, validation accuracy "
      f"{overfit.check_accuracy(data['X_val'], data['y_val']):.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(overfit.loss_history, "o-", markersize=3)
axes[0].set_xlabel("iteration")
axes[0].set_ylabel("training loss")
axes[1].plot(overfit.train_acc_history, "o-", label="train")
axes[1].plot(overfit.val_acc_history, "o-", label="val")
axes[1].set_xlabel("accuracy check (after the first step, then every epoch)")
axes[1].set_ylabel("accuracy")
axes[1].legend()
fig.suptitle("Overfitting 50 images")
plt.show()

# %% [markdown]
# ## 3. Training on Fashion-MNIST; learning curves (5 points)
#
# **Target (full budget):** at least 80% test accuracy after 4 epochs on 5,000 images, within
# 5 minutes of training on 2 cores (the demo configuration takes well under that). The graded
# run (1,000 images, 1 epoch) only needs clearly-above-chance accuracy: chance is 10%.
#
# **Exercise.** Write `train_convnet(data, num_epochs, time_budget, seed)`: choose a model (a
# `ThreeLayerConvNet`, or a `ConvNet` built from an `arch.Spec`) and the Solver's settings, train
# on all of `data`'s training images, stop after `time_budget` seconds at the latest (the
# Solver's `time_budget`), and return the solver. Seed both model and Solver with `seed`.

# %% solution: train_convnet
def train_convnet(data, num_epochs, time_budget, seed=0):
    """Train a ConvNet on data (X_train, y_train, X_val, y_val); return the trained Solver."""
    ### BEGIN SOLUTION
    model = ThreeLayerConvNet(input_dim=data["X_train"].shape[1:], num_filters=16,
                              filter_size=5, hidden_dim=100, num_classes=10, weight_scale=5e-2,
                              seed=seed)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.9, num_epochs=num_epochs, batch_size=50, seed=seed,
                    print_every=50, time_budget=time_budget)
    return solver.train()
    ### END SOLUTION


# %% tests: test_train_convnet (5 points)
"""train_convnet under this notebook's budget: the loss falls and the accuracy beats chance."""
start = time.perf_counter()
solver = train_convnet(data, EPOCHS, MAX_SECONDS, seed=0)
seconds = time.perf_counter() - start
test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
losses = np.asarray(solver.loss_history)
k = max(len(losses) // 5, 1)
record("train_test_acc", test_acc, kind="at_least", bound=0.4)
record("train_loss_fell", bool(losses[-k:].mean() < 0.8 * losses[:k].mean()), kind="equal")
print(f"{len(losses)} steps in {seconds:.1f} s; loss {losses[:k].mean():.3f} -> "
      f"{losses[-k:].mean():.3f}; test accuracy {test_acc:.3f}")
assert losses[-k:].mean() < 0.8 * losses[:k].mean(), "the training loss did not fall"
assert test_acc >= 0.4, f"test accuracy {test_acc:.3f} is too close to chance (0.1)"

# %%
met = test_acc >= 0.8 and seconds <= 300
print(f"this run: {NUM_TRAIN} images, {solver.epoch} epoch(s), {seconds:.1f} s, test accuracy "
      f"{test_acc:.1%}; full-budget target (80% within 300 s) "
      f"{'met' if met else 'not met' + (' (graded budget)' if grading_mode() else '')}")
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(losses, alpha=0.4, label="per step")
smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
axes[0].plot(np.arange(k - 1, len(losses)), smooth, label=f"mean of {k} steps")
axes[0].set_xlabel("iteration")
axes[0].set_ylabel("training loss")
axes[0].legend()
axes[1].plot(solver.train_acc_history, "o-", label="train")
axes[1].plot(solver.val_acc_history, "o-", label="val")
axes[1].axhline(1 / num_classes, color="grey", linestyle=":", label="chance")
axes[1].set_xlabel("accuracy check (after the first step, then every epoch)")
axes[1].set_ylabel("accuracy")
axes[1].legend()
plt.show()

# %% [markdown]
# **Where the mistakes are.** The confusion matrix of the test set (rows: true class, columns:
# predicted class):

# %%
scores = solver.model.loss(data["X_test"])
predicted = np.argmax(scores, axis=1)
confusion = np.zeros((num_classes, num_classes), dtype=int)
np.add.at(confusion, (data["y_test"], predicted), 1)
plt.figure(figsize=(6, 5))
plt.imshow(confusion, cmap="Blues")
plt.xticks(range(num_classes), class_names, rotation=90)
plt.yticks(range(num_classes), class_names)
plt.colorbar()
plt.title("test confusion matrix")
plt.show()
worst = np.argsort(np.diag(confusion) / confusion.sum(axis=1))[:3]
print("hardest classes:", ", ".join(f"{class_names[c]} "
                                    f"({confusion[c, c] / confusion[c].sum():.0%})"
                                    for c in worst))

# %% [markdown]
# **CIFAR-10.** If CIFAR-10 has been fetched (`python -m cs231n_lib.data fetch cifar10`, 170
# MB, needs internet), the same function trains on 32 x 32 colour images; CIFAR-10 is much
# harder than Fashion-MNIST. Skipped under the grader.

# %%
try:
    cifar = None if grading_mode() else load_dataset("cifar10", num_training=NUM_TRAIN)
except FileNotFoundError as err:
    cifar = None
    print(str(err).splitlines()[0])
if cifar is not None:
    for split in ("train", "val", "test"):
        cifar[f"X_{split}"] = cifar[f"X_{split}"] / np.float32(255)
    cifar_solver = train_convnet(cifar, EPOCHS, MAX_SECONDS, seed=0)
    print(f"CIFAR-10 test accuracy: "
          f"{cifar_solver.check_accuracy(cifar['X_test'], cifar['y_test']):.3f}")

# %% [markdown]
# ## 4. First-layer filters and feature maps (2 points)
#
# The first layer's filters live in the space of the input pixels, so they can be shown as
# images; a trained network's first-layer filters are typically smooth edge and blob detectors
# (after a short training they are still noisy). A **feature map** (activation map) is one
# filter's response over the whole image.
#
# **Exercise.** Write `first_layer_maps(model, x)`: the feature maps after the first
# convolution and its ReLU of a `ThreeLayerConvNet` (parameters W1, b1; stride 1 and "same"
# padding `(F - 1) // 2`), using `conv_relu_forward`.

# %% solution: first_layer_maps
def first_layer_maps(model, x):
    """
    Inputs:
    - model: a ThreeLayerConvNet; x: images of shape (N, C, H, W)

    Returns relu(conv(x, W1, b1)) of shape (N, F, H, W).
    """
    ### BEGIN SOLUTION
    W1, b1 = model.params["W1"], model.params["b1"]
    pad = (W1.shape[2] - 1) // 2
    return conv_relu_forward(x.astype(W1.dtype), W1, b1, {"stride": 1, "pad": pad})[0]
    ### END SOLUTION


# %% tests: test_first_layer_maps (2 points)
"""first_layer_maps on a seeded model, against conv_forward_fast and a ReLU."""
rng = np.random.default_rng(4)
model4 = ThreeLayerConvNet(input_dim=(1, 12, 12), num_filters=4, filter_size=5, hidden_dim=6,
                           weight_scale=0.1, dtype=np.float64, seed=4)
model4.params["b1"] = rng.standard_normal(4)
x4 = rng.standard_normal((2, 1, 12, 12))
maps = first_layer_maps(model4, x4)
record("feature_maps", maps, rtol=1e-10, atol=1e-12)
expected = conv_forward_fast(x4, model4.params["W1"], model4.params["b1"],
                             {"stride": 1, "pad": 2})[0]
assert_array("feature maps", maps, np.maximum(expected, 0), rtol=1e-10, atol=1e-12)

# %%
W1 = solver.model.params["W1"]
plot_filters((W1 - W1.min()) / (W1.max() - W1.min()),
             title=f"the {W1.shape[0]} first-layer filters ({W1.shape[2]}x{W1.shape[3]})")
plt.show()
image = data["X_test"][:1]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 2]})
axes[0].imshow(image[0, 0], cmap="gray")
axes[0].set_title(f"test image: {class_names[data['y_test'][0]]}")
axes[0].axis("off")
maps = first_layer_maps(solver.model, image)[0]
plot_feature_maps(maps / max(maps.max(), 1e-12), title="its first-layer feature maps",
                  ax=axes[1])
plt.show()

# %% [markdown]
# ## 5. Spatial batch normalisation (6 points)
#
# Batch normalisation normalises every feature over the minibatch, then scales and shifts it by
# learned `gamma` and `beta`. For a convolutional layer a "feature" is a channel: the statistics
# of channel c are taken over the N images *and* all H x W positions (so that every position of a
# channel is normalised alike, which keeps the convolution's translation equivariance: a shifted
# input gives a shifted output), giving C means and variances. That is
# ordinary batch normalisation on an (N * H * W, C) matrix.
#
# **Exercise.** Write `spatial_batchnorm_forward` and `spatial_batchnorm_backward` by
# reshaping and calling the library's `layers.batchnorm_forward` / `layers.batchnorm_backward`
# (the bn_param contract is theirs: mode, eps, momentum, and the running statistics stored in
# the dict). Mind the axis order: the channel axis must end up last before the reshape. The
# library's own `layers.spatial_batchnorm_forward` / `_backward` (used by its `ConvNet`) are
# what you are writing here: do not call them; the grader checks your code for it.

# %% solution: spatial_batchnorm_forward
# rules: forbid cs231n_lib; allow cs231n_lib.layers.{batchnorm_forward,batchnorm_backward}
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """
    Inputs:
    - x: input of shape (N, C, H, W); gamma, beta: shape (C,)
    - bn_param: dict as for layers.batchnorm_forward ("mode" required)

    Returns a tuple (out of shape (N, C, H, W), cache).
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, C)  # (N*H*W, C): one row per position
    out, cache = layers.batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache
    ### END SOLUTION


def spatial_batchnorm_backward(dout, cache):
    """Returns a tuple (dx of shape (N, C, H, W), dgamma (C,), dbeta (C,))."""
    ### BEGIN SOLUTION
    N, C, H, W = dout.shape
    dx, dgamma, dbeta = layers.batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, C),
                                                  cache)
    return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta
    ### END SOLUTION


# %% tests: test_spatial_batchnorm_forward (2 points)
"""spatial_batchnorm_forward: per-channel statistics and running averages, written out."""
rng = np.random.default_rng(5)
x5 = 4 * rng.standard_normal((4, 3, 5, 6)) + np.array([1.0, -2.0, 10.0])[None, :, None, None]
gamma5, beta5 = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
params_mine = {"mode": "train", "momentum": 0.8}
out5, _ = spatial_batchnorm_forward(x5, gamma5, beta5, params_mine)
record("sbn_out", out5, rtol=1e-8, atol=1e-10)
# The definition: statistics of each channel over N, H and W; eps = 1e-5 (the default).
mean5, var5 = x5.mean(axis=(0, 2, 3)), x5.var(axis=(0, 2, 3))  # shape (C,) each


def per_channel(v):
    """A (C,) vector shaped (1, C, 1, 1) to broadcast over (N, C, H, W)."""
    return v[None, :, None, None]


expected5 = (per_channel(gamma5) * (x5 - per_channel(mean5)) / np.sqrt(per_channel(var5) + 1e-5)
             + per_channel(beta5))
assert_array("out", out5, expected5, rtol=1e-8, atol=1e-10)
assert_array("per-channel means", out5.mean(axis=(0, 2, 3)), beta5, atol=1e-8)
assert_array("per-channel stds", out5.std(axis=(0, 2, 3)), gamma5, rtol=1e-3)
record("sbn_running_mean", params_mine.get("running_mean"), rtol=1e-8)
# running_mean = momentum * running_mean + (1 - momentum) * mean, starting from zeros
running_mean5, running_var5 = 0.2 * mean5, 0.8 * 1.0 + 0.2 * var5
assert_array("running_mean in bn_param", params_mine.get("running_mean"), running_mean5,
             rtol=1e-8)
test_out, _ = spatial_batchnorm_forward(x5, gamma5, beta5, dict(params_mine, mode="test"))
record("sbn_test_out", test_out, rtol=1e-8, atol=1e-10)
expected_test = (per_channel(gamma5) * (x5 - per_channel(running_mean5))
                 / np.sqrt(per_channel(running_var5) + 1e-5) + per_channel(beta5))
assert_array("test-mode out (running averages instead of the batch's)", test_out,
             expected_test, rtol=1e-8, atol=1e-10)

# %% tests: test_spatial_batchnorm_backward (2 points)
"""spatial_batchnorm_backward against numerical gradients."""
rng = np.random.default_rng(6)
x6, dout6 = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
gamma6, beta6 = rng.standard_normal(3), rng.standard_normal(3)
_, cache6 = spatial_batchnorm_forward(x6, gamma6, beta6, {"mode": "train"})
dx6, dgamma6, dbeta6 = spatial_batchnorm_backward(dout6, cache6)
record("sbn_grads", (dx6, dgamma6, dbeta6), rtol=1e-6, atol=1e-8)


def sbn_out(x, g, b):
    return spatial_batchnorm_forward(x, g, b, {"mode": "train"})[0]


assert_array("dx", dx6, eval_numerical_gradient_array(
    lambda v: sbn_out(v, gamma6, beta6), x6, dout6), rtol=1e-5, atol=1e-7)
assert_array("dgamma", dgamma6, eval_numerical_gradient_array(
    lambda v: sbn_out(x6, v, beta6), gamma6, dout6), rtol=1e-5, atol=1e-7)
assert_array("dbeta", dbeta6, eval_numerical_gradient_array(
    lambda v: sbn_out(x6, gamma6, v), beta6, dout6), rtol=1e-5, atol=1e-7)

# %% tests: test_spatial_batchnorm_hidden (2 points)
"""Spatial batch normalisation on other shapes and float32 (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(66)
for case, (shape, dtype) in enumerate((((3, 2, 7, 4), np.float64), ((5, 4, 3, 3), np.float32))):
    x = (3 * rng.standard_normal(shape) + 1).astype(dtype)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), \
        rng.standard_normal(shape[1]).astype(dtype)
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-5})
    tol = 1e-4 if dtype == np.float32 else 1e-8
    record(f"sbn_hidden_out_{case}", out, rtol=tol, atol=tol)
    grads = spatial_batchnorm_backward(rng.standard_normal(shape).astype(dtype), cache)
    record(f"sbn_hidden_grads_{case}", tuple(grads), rtol=tol * 10, atol=tol * 10)
### END HIDDEN TESTS

# %% [markdown]
# What it changes in training: the same small network with and without batch normalisation
# after each convolution, trained by plain SGD with momentum at a learning rate that is large for
# the network without it. (The library's `ConvNet` runs both from specs.)

# %%
def small_net(bn, width=8):
    """conv-[bn]-relu-pool twice, then a classifier, on Fashion-MNIST's 1x28x28 images."""
    norm = (arch.BatchNorm(),) if bn else ()
    return arch.Spec("bn" if bn else "plain", (1, 28, 28), (
        arch.Conv(width, 3, pad=1), *norm, arch.ReLU(), arch.Pool("max", 2),
        arch.Conv(2 * width, 3, pad=1), *norm, arch.ReLU(), arch.Pool("max", 2),
        arch.Flatten(), arch.FC(10)))


bn_runs = {}
bn_data = dict(data, X_train=data["X_train"][:BN_TRAIN], y_train=data["y_train"][:BN_TRAIN])
for bn in (False, True):
    model = ConvNet(small_net(bn), seed=0)
    run = Solver(model, bn_data, update_rule="sgd_momentum",
                 optim_config={"learning_rate": 5e-2}, num_epochs=COMPARE_EPOCHS, batch_size=50,
                 num_train_samples=200, num_val_samples=500, seed=0, verbose=False,
                 time_budget=MAX_SECONDS)
    bn_runs["with batch norm" if bn else "without"] = run.train()
for label, run in bn_runs.items():
    plt.plot(run.loss_history, alpha=0.7, label=f"{label} (val acc {run.best_val_acc:.2f})")
plt.xlabel("iteration")
plt.ylabel("training loss")
plt.legend()
plt.show()

# %% [markdown]
# ## 6. Max pooling vs an all-convolutional network (5 points)
#
# The notes report that many people dislike pooling: "Striving for Simplicity: The All
# Convolutional Net" replaces each pooling layer by a convolution with a larger stride. The
# library has both versions of a small network: `arch.small_pool_net` (two conv-relu-2x2 max
# pool stages) and `arch.all_conv_net`, where each 2x2/2 max pool becomes a learned 2x2/2
# convolution (same window, same output size, more parameters).
#
# **Exercise.** Write `train_spec(spec, data, num_epochs, time_budget, seed)`: build a
# `ConvNet(spec, seed=seed)`, train it with a seeded Solver (Adam, learning rate 1e-3, batch 50
# works) for at most `time_budget` seconds, and return `(solver, test accuracy)`.

# %% solution: train_spec
def train_spec(spec, data, num_epochs, time_budget, seed=0):
    """Train ConvNet(spec) on data; return (solver, accuracy on data's test split)."""
    ### BEGIN SOLUTION
    model = ConvNet(spec, seed=seed)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    num_epochs=num_epochs, batch_size=50, seed=seed, verbose=False,
                    num_train_samples=200, num_val_samples=500, time_budget=time_budget)
    solver.train()
    return solver, solver.check_accuracy(data["X_test"], data["y_test"])
    ### END SOLUTION


# %% tests: test_train_spec (3 points)
"""train_spec on the pooling net and its all-convolutional twin: both well above chance."""
specs = {"max pooling": arch.small_pool_net((1, 28, 28), width=8),
         "all-convolutional": arch.all_conv_net((1, 28, 28), width=8)}
results = {}
for label, spec in specs.items():
    start = time.perf_counter()
    run, acc = train_spec(spec, data, COMPARE_EPOCHS, MAX_SECONDS, seed=0)
    results[label] = (run, acc, time.perf_counter() - start)
    record(f"compare_acc_{label}", acc, kind="at_least", bound=0.3)
    record(f"compare_params_{label}", int(sum(p.size for p in run.model.params.values())),
           kind="equal")
    assert acc >= 0.3, f"{label}: test accuracy {acc:.3f} is too close to chance"

# %%
print(f"{'network':<20}{'parameters':>12}{'test accuracy':>15}{'seconds':>9}")
for label, (run, acc, secs) in results.items():
    n_params = sum(p.size for p in run.model.params.values())
    print(f"{label:<20}{n_params:>12,}{acc:>15.3f}{secs:>9.1f}")
for label, (run, _, _) in results.items():
    plt.plot(run.val_acc_history, "o-", label=label)
plt.xlabel("accuracy check (after the first step, then every epoch)")
plt.ylabel("validation accuracy")
plt.legend()
plt.show()

# %% [markdown]
# **Question (2 points).**
# Compare the two networks on parameters, accuracy and time in your run (say which budget you
# ran). What does the strided convolution learn that max pooling cannot, what does it cost, and
# why might generative models (VAEs, GANs) prefer it, as the notes report?

# %% [markdown] answer: q_pool_vs_allconv (2 points)
# **Reference answer.** The all-convolutional net has more parameters (each 2x2/2 pool becomes a
# 2x2 convolution with C^2 * 4 weights) and a little more computation per step. Which one is
# more accurate depends on the budget and the seed: after a short run the gap can be several
# points either way, and with more training the two get close on this small data set. A strided
# convolution learns how to downsample (a weighted combination of the window, per output
# channel) where max pooling applies a fixed rule, and it passes gradients to every input of the
# window rather than only to the maximum. Generative models must *produce* images: learned
# up/downsampling (strided and transposed convolutions) is differentiable everywhere and has no
# fixed, information-discarding selection, which makes training such models easier.
