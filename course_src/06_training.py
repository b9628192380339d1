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
# compare max pooling with an all-convolutional network (a question the notes raise), meet the
# normalisation layers that came before and after batch normalisation (LRN, group
# normalisation), and see why the scale of the initial weights matters.
#
# **How to work.** Write your code where the line `# YOUR CODE HERE` stands (remove the
# `raise NotImplementedError()` under it), run the test cell below each exercise, and fix what its
# message reports (type, then shape, then values). Test cells are read-only. The grader runs
# further, hidden tests; passing the visible tests is necessary, not sufficient. Write your
# answers to the written questions in the cells marked "YOUR ANSWER HERE".
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
# | 7 | Other normalisation layers: LRN and group normalisation | 6 |
# | 8 | Weight initialisation | 2 |
#
# **Total: 34 points**
#
# **Conventions** (the whole course): NCHW tensors; `pad` is zero padding per side; the Solver's
# contract is in its docstring (`help(Solver)`). Terms of the Chinese notes: see the
# [glossary of notebook 1](../01_convolution/01_convolution.ipynb#Glossary).

# %% [markdown]
# ## Terms
#
# The terms of the Chinese notes that this notebook uses, as the translation writes them (the
# full list: [glossary of notebook 1](../01_convolution/01_convolution.ipynb#Glossary)):
#
# | 中文 | English | Meaning here |
# |---|---|---|
# | 卷积 | convolution | slide a filter over the input; multiply and sum at each position |
# | 滤波器 | filter | one set of weights (F x F x input depth) slid over the input |
# | 激活图 | activation map | the output of one filter over all positions (a feature map) |
# | 汇聚 | pooling | summarise each window of a feature map (max or average), per channel |
# | 步长 | stride | S, the step between neighbouring filter positions |
# | 零填充 | zero padding | P rows/columns of zeros added on each side of the input |
# | 降采样 | down-sampling | reducing the spatial size (pooling, or a stride above 1) |
# | 数据体 | volume | a 3-D array of activations: width x height x depth (channels) |
# | 深度切片 | depth slice | one channel of a volume: a 2-D array at one depth |
# | 参数共享 | parameter sharing | all positions of one depth slice use the same filter weights |
# | 激活数据 | activations | the values of an intermediate volume (a layer's output) |
# | 损失函数 | loss function | what training minimises (here softmax cross-entropy) |
# | 梯度 | gradient | derivative of the loss with respect to an activation or a parameter |
# | 学习率 | learning rate | the step size of each gradient update |
# | 过拟合 | overfitting | fitting the training set much better than unseen data |
# | 批量归一化 | batch normalisation | normalise each channel by the batch's mean and variance |

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
from cs231n_lib.fast_layers import conv_forward_fast
from cs231n_lib.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)
from cs231n_lib.layer_utils import conv_relu_forward
from cs231n_lib.normalization import ALEXNET_LRN, lrn_denominator, lrn_forward
from cs231n_lib.solver import Solver
from cs231n_lib.train_demo import prepare_data
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
# `prepare_data` subtracts the mean training image and scales the pixels to about [-1, 1]: that
# is what the network sees. To show the images as a person sees them, the grid below draws the
# same images before the mean is subtracted (grey levels 0 to 255, black to white).

# %%
data = prepare_data("fashion_small", num_training=NUM_TRAIN)
for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
    print(f"{key:>8}: {data[key].shape} {data[key].dtype}")
class_names = list(data["class_names"])
num_classes = len(class_names)
raw = load_dataset("fashion_small", num_training=NUM_TRAIN, subtract_mean=False)
assert np.array_equal(raw["y_train"], data["y_train"]), "the two loads differ in order"
examples = np.concatenate([raw["X_train"][raw["y_train"] == c][:10] for c in range(10)])
plot_grid(examples / 255,
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
# Solver's `time_budget`), and return the solver. Seed both model and Solver with `seed`. On two
# cores, `Solver(..., processes=2)` has a second process compute half of every batch: the same
# steps up to rounding, and faster for networks as small as these (`solver.split_status` says
# whether it ran).

# %% solution: train_convnet
def train_convnet(data, num_epochs, time_budget, seed=0):
    """Train a ConvNet on data (X_train, y_train, X_val, y_val); return the trained Solver."""
    ### BEGIN SOLUTION
    model = ThreeLayerConvNet(input_dim=data["X_train"].shape[1:], num_filters=16,
                              filter_size=5, hidden_dim=100, num_classes=10, weight_scale=5e-2,
                              seed=seed)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.9, num_epochs=num_epochs, batch_size=50, seed=seed,
                    print_every=50, time_budget=time_budget, processes=2)
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
print(f"training speed: {solver.images_per_second:,.0f} images/s (forward, backward and update "
      f"of {solver.images_seen:,} images; accuracy checks not counted)")
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
# input gives a shifted output), giving C means and variances. In train mode, with
# $\mu_c$ and $\sigma_c^2$ the mean and (biased) variance of channel c over the batch,
#
# $$\hat x_{nchw} = \frac{x_{nchw} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}, \qquad
#   y_{nchw} = \gamma_c \hat x_{nchw} + \beta_c ,$$
#
# and the running averages are updated for test time:
# `running_mean = momentum * running_mean + (1 - momentum) * mean` (the same for `running_var`;
# they start as zeros and ones). Test mode normalises with the running averages instead.
# Backward, in train mode the mean and the variance depend on every x of the channel too; with
# $g = \gamma_c \, \partial L / \partial y$ and $m = N H W$ values per channel, the chain rule
# gives the compact form
#
# $$\frac{\partial L}{\partial x_{nchw}} = \frac{1}{\sqrt{\sigma_c^2 + \epsilon}}
#   \Big(g_{nchw} - \frac{1}{m}\sum_{n'h'w'} g_{n'ch'w'} -
#   \hat x_{nchw} \frac{1}{m}\sum_{n'h'w'} g_{n'ch'w'} \hat x_{n'ch'w'}\Big)$$
#
# (in test mode the statistics are constants and only the first term remains), and
# `dgamma`, `dbeta` are sums over N, H and W of `dout * x_hat` and `dout`.
#
# **Exercise.** Write `spatial_batchnorm_forward` and `spatial_batchnorm_backward` with numpy
# alone. The `bn_param` contract is CS231n's: `mode` ("train" or "test", required), `eps`
# (default 1e-5), `momentum` (default 0.9), and the running statistics, which the forward pass
# stores into the dict in train mode. The library's batch normalisation layers (used by its
# `ConvNet`) are what you are writing here: do not call them; the grader checks your code for
# it (the rule at the top of the cell).

# %% solution: spatial_batchnorm_forward
# rules: forbid cs231n_lib
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """
    Inputs:
    - x: input of shape (N, C, H, W); gamma, beta: shape (C,)
    - bn_param: dict with "mode" (required), "eps", "momentum", "running_mean", "running_var"

    Returns a tuple (out of shape (N, C, H, W) and x's dtype, cache).
    """
    ### BEGIN SOLUTION
    C = x.shape[1]
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    running_mean = bn_param.get("running_mean", np.zeros(C, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(C, dtype=x.dtype))
    if bn_param["mode"] == "train":
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # (C,) each
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
    else:
        mean, var = running_mean, running_var
    inv_std = (1 / np.sqrt(var + eps))[:, None, None]  # (C, 1, 1): broadcasts over (N, C, H, W)
    x_hat = ((x - mean[:, None, None]) * inv_std).astype(x.dtype)
    out = gamma[:, None, None] * x_hat + beta[:, None, None]
    return out.astype(x.dtype), (x_hat, inv_std, gamma, bn_param["mode"])
    ### END SOLUTION


def spatial_batchnorm_backward(dout, cache):
    """Returns a tuple (dx of shape (N, C, H, W), dgamma (C,), dbeta (C,))."""
    ### BEGIN SOLUTION
    x_hat, inv_std, gamma, mode = cache
    axes = (0, 2, 3)  # the axes each channel's statistics are taken over
    dbeta, dgamma = dout.sum(axis=axes), (dout * x_hat).sum(axis=axes)
    g = dout * gamma[:, None, None]  # gradient with respect to x_hat
    if mode == "train":
        g = (g - g.mean(axis=axes, keepdims=True)
             - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
    return (g * inv_std).astype(dout.dtype), dgamma, dbeta
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
                    num_train_samples=200, num_val_samples=500, time_budget=time_budget,
                    processes=2)
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

# %% [markdown]
# ## 7. Other normalisation layers: LRN and group normalisation (6 points)
#
# **Local response normalisation (LRN).** The AlexNet and ZF Net specs of notebook 5 contain
# layers labelled `lrn` that nothing explained. AlexNet divides every activation by a power of
# the sum of squares of the same position in the `size` neighbouring channels (a "lateral
# inhibition" idea borrowed from neuroscience: a strong channel damps its neighbours):
#
# $$b_{c} = a_{c} \Big/ \Big(k + \alpha \sum_{c' = c - \lfloor n/2 \rfloor}^{c + \lfloor n/2
#   \rfloor} a_{c'}^2\Big)^{\beta}$$
#
# with the paper's constants n = 5, k = 2, alpha = 1e-4, beta = 0.75 (the sum stops at the first
# and last channel). It has no parameters and no effect on the shape. The library computes it
# (`cs231n_lib.normalization.lrn_forward`, a given tool, not an exercise). The cell below shows
# where the specs use it and what it does to one pixel's channels, then measures how far it is
# from a plain division by the constant $k^\beta$ on the feature maps of the network you
# trained in part 3, once at this notebook's pixel scale and once at AlexNet's (pixels 0 to 255).

# %%
for spec in (arch.alexnet(), arch.zfnet()):
    labels = [layer.label() for layer in spec.layers]
    second_lrn = [i for i, label in enumerate(labels) if label == "lrn"][1]
    print(f"{spec.name}: " + " -> ".join(labels[:second_lrn + 1]) + " -> ...")
print("LRN constants (AlexNet paper):", ALEXNET_LRN)
pixel = np.array([10.0, 20.0, 200.0, 20.0, 10.0, 0.0, 50.0])[None, :, None, None]  # 7 channels
scale = ALEXNET_LRN["k"] ** ALEXNET_LRN["beta"]
print(f"{'channel':>8}{'a':>8}{'denominator':>13}{'b = LRN(a)':>12}{'a / k^beta':>12}")
for c, (a, d, b) in enumerate(zip(pixel.ravel(), lrn_denominator(pixel, **ALEXNET_LRN).ravel(),
                                  lrn_forward(pixel, **ALEXNET_LRN).ravel(), strict=True)):
    print(f"{c:>8}{a:>8.1f}{d:>13.4f}{b:>12.4f}{a / scale:>12.4f}")
W1, b1 = solver.model.params["W1"], solver.model.params["b1"]
feature_maps = conv_relu_forward(data["X_test"][:50], W1, b1,
                                 {"stride": 1, "pad": (W1.shape[2] - 1) // 2})[0]
for label, factor in (("this notebook's pixels (about -1 to 1)", 1.0),
                      ("AlexNet's pixels (0 to 255)", 255.0)):
    maps = factor * feature_maps.astype(np.float64)
    active = maps > 0
    ratio = lrn_forward(maps, **ALEXNET_LRN)[active] / (maps[active] / scale)
    print(f"conv1 maps at {label}: LRN(a) / (a / k^beta) from {ratio.min():.4f} to "
          f"{ratio.max():.4f} (median {np.median(ratio):.4f})")

# %% [markdown]
# The notes' verdict: many normalisation layers were proposed, "sometimes with the intentions of
# implementing inhibition schemes observed in the biological brain. However, these layers have
# since fallen out of favor because in practice their contribution has been shown to be
# minimal, if any." The numbers above show one reason: unless activations are large, the sum of
# squares is small next to k and LRN is close to a division by the constant $k^\beta$, which
# the next layer's weights absorb. Where it does bite, it is a fixed rule with hand-set
# constants. VGGNet reported no gain from it, and batch normalisation (part 5), which learns
# its scale and shift and keeps every layer's inputs in a good range, replaced it.
#
# **Group normalisation** (Wu and He, 2018) normalises each image on its own: the C channels
# are split into G groups of C/G consecutive channels, and the statistics of a group are taken
# over its C/G channels and all H x W positions of **one** image. So it does not depend on the
# other images in the batch (batch normalisation becomes noisy when a batch holds only a few
# images, as in detection and segmentation), behaves the same in training and at test time (no
# running averages), and still gives each channel its own learned `gamma` and `beta`. G = 1 is
# layer normalisation, G = C instance normalisation. With $\mu_{ng}$, $\sigma^2_{ng}$ the mean
# and (biased) variance of group g of image n:
#
# $$\hat x_{nchw} = \frac{x_{nchw} - \mu_{ng}}{\sqrt{\sigma_{ng}^2 + \epsilon}}, \qquad
#   y_{nchw} = \gamma_c \hat x_{nchw} + \beta_c \qquad (c \text{ in group } g).$$
#
# The backward pass is part 5's formula with the sums taken over a group of one image (its C/G
# channels and H x W positions) instead of over a channel of the whole batch; `dgamma` and
# `dbeta` are still per channel.
#
# **Exercise.** Write `spatial_groupnorm_forward(x, gamma, beta, G, eps)` and
# `spatial_groupnorm_backward(dout, cache)` with numpy alone (the grader checks that your code
# calls no library normalisation: the rule at the top of the cell). Raise a `ValueError` naming
# C and G when C is not a multiple of G. Hint: reshape x to (N, G, C/G, H, W).

# %% solution: spatial_groupnorm_forward
# rules: forbid cs231n_lib
def spatial_groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    """
    Inputs:
    - x: input of shape (N, C, H, W); gamma, beta: shape (C,)
    - G: number of groups, a divisor of C; eps: constant added to the variance

    Returns a tuple (out of shape (N, C, H, W) and x's dtype, cache).
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    if C % G:
        raise ValueError(f"C={C} channels cannot be split into G={G} equal groups")
    groups = x.reshape(N, G, C // G, H, W)
    mean = groups.mean(axis=(2, 3, 4), keepdims=True)  # (N, G, 1, 1, 1)
    inv_std = 1 / np.sqrt(groups.var(axis=(2, 3, 4), keepdims=True) + eps)
    x_hat = ((groups - mean) * inv_std).reshape(x.shape).astype(x.dtype)
    out = gamma[:, None, None] * x_hat + beta[:, None, None]
    return out.astype(x.dtype), (x_hat, inv_std, gamma, G)
    ### END SOLUTION


def spatial_groupnorm_backward(dout, cache):
    """Returns a tuple (dx of shape (N, C, H, W), dgamma (C,), dbeta (C,))."""
    ### BEGIN SOLUTION
    x_hat, inv_std, gamma, G = cache
    N, C, H, W = dout.shape
    dbeta, dgamma = dout.sum(axis=(0, 2, 3)), (dout * x_hat).sum(axis=(0, 2, 3))
    g = (dout * gamma[:, None, None]).reshape(N, G, C // G, H, W)  # gradient wrt x_hat
    x_hat_g = x_hat.reshape(g.shape)
    axes = (2, 3, 4)  # a group of one image
    dx = inv_std * (g - g.mean(axis=axes, keepdims=True)
                    - x_hat_g * (g * x_hat_g).mean(axis=axes, keepdims=True))
    return dx.reshape(dout.shape).astype(dout.dtype), dgamma, dbeta
    ### END SOLUTION


# %% tests: test_spatial_groupnorm_forward (2 points)
"""spatial_groupnorm_forward: statistics per image and group, written out; batch independence."""
rng = np.random.default_rng(7)
x7 = 3 * rng.standard_normal((2, 6, 3, 4)) + np.arange(6.0)[None, :, None, None]
gamma7, beta7 = np.linspace(0.5, 2.0, 6), np.linspace(-1.0, 1.0, 6)
out7, _ = spatial_groupnorm_forward(x7, gamma7, beta7, 3)
record("gn_out", out7, rtol=1e-8, atol=1e-10)
# The definition: 3 groups of 2 channels; statistics over a group's channels, H and W per image.
groups7 = x7.reshape(2, 3, 2, 3, 4)
mean7 = groups7.mean(axis=(2, 3, 4), keepdims=True)
var7 = groups7.var(axis=(2, 3, 4), keepdims=True)
x_hat7 = ((groups7 - mean7) / np.sqrt(var7 + 1e-5)).reshape(x7.shape)
assert_array("out", out7, gamma7[:, None, None] * x_hat7 + beta7[:, None, None],
             rtol=1e-8, atol=1e-10)
alone, _ = spatial_groupnorm_forward(x7[1:], gamma7, beta7, 3)
assert_array("image 1 normalised alone (group norm ignores the rest of the batch)", alone,
             out7[1:], rtol=1e-10, atol=1e-12)
layer_norm, _ = spatial_groupnorm_forward(x7, np.ones(6), np.zeros(6), 1)
assert_array("G=1 (layer norm): per-image means", layer_norm.mean(axis=(1, 2, 3)), np.zeros(2),
             atol=1e-10)
try:
    spatial_groupnorm_forward(x7, gamma7, beta7, 4)
except ValueError:
    pass
else:
    raise AssertionError("C=6, G=4 must raise ValueError (6 channels in 4 groups)")

# %% tests: test_spatial_groupnorm_backward (2 points)
"""spatial_groupnorm_backward against numerical gradients."""
rng = np.random.default_rng(8)
x8, dout8 = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 4, 3, 3))
gamma8, beta8 = rng.standard_normal(4), rng.standard_normal(4)
_, cache8 = spatial_groupnorm_forward(x8, gamma8, beta8, 2)
dx8, dgamma8, dbeta8 = spatial_groupnorm_backward(dout8, cache8)
record("gn_grads", (dx8, dgamma8, dbeta8), rtol=1e-6, atol=1e-8)


def gn_out(x, g, b):
    return spatial_groupnorm_forward(x, g, b, 2)[0]


assert_array("dx", dx8, eval_numerical_gradient_array(
    lambda v: gn_out(v, gamma8, beta8), x8, dout8), rtol=1e-5, atol=1e-7)
assert_array("dgamma", dgamma8, eval_numerical_gradient_array(
    lambda v: gn_out(x8, v, beta8), gamma8, dout8), rtol=1e-5, atol=1e-7)
assert_array("dbeta", dbeta8, eval_numerical_gradient_array(
    lambda v: gn_out(x8, gamma8, v), beta8, dout8), rtol=1e-5, atol=1e-7)

# %% tests: test_spatial_groupnorm_hidden (2 points)
"""Group normalisation with other shapes, G = 1 and G = C, and float32 (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(77)
for case, (shape, G, dtype) in enumerate((((3, 4, 5, 2), 1, np.float64),
                                          ((2, 6, 3, 3), 6, np.float64),
                                          ((4, 8, 4, 4), 4, np.float32))):
    x = (2 * rng.standard_normal(shape) - 1).astype(dtype)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), \
        rng.standard_normal(shape[1]).astype(dtype)
    out, cache = spatial_groupnorm_forward(x, gamma, beta, G)
    tol = 1e-4 if dtype == np.float32 else 1e-8
    record(f"gn_hidden_out_{case}", out, rtol=tol, atol=tol)
    grads = spatial_groupnorm_backward(rng.standard_normal(shape).astype(dtype), cache)
    record(f"gn_hidden_grads_{case}", tuple(grads), rtol=tol * 10, atol=tol * 10)
### END HIDDEN TESTS

# %% [markdown]
# Batch against group normalisation on the same images: the first image's output, computed in
# a batch of 8 and in a batch of its own (with your two forward passes).

# %%
rng = np.random.default_rng(9)
batch = rng.standard_normal((8, 4, 5, 5)) * np.arange(1.0, 9.0)[:, None, None, None]
ones, zeros = np.ones(4), np.zeros(4)
for label, forward in (("batch norm", lambda v: spatial_batchnorm_forward(
                            v, ones, zeros, {"mode": "train"})[0]),
                       ("group norm (G=2)", lambda v: spatial_groupnorm_forward(
                            v, ones, zeros, 2)[0])):
    change = np.abs(forward(batch)[:1] - forward(batch[:1])).max()
    print(f"{label:>17}: largest change of image 0's output when the batch shrinks to 1: "
          f"{change:.3g}")

# %% [markdown]
# ## 8. Weight initialisation (2 points)
#
# The networks above started from random weights of a chosen scale: `ConvNet` silently uses
# **He initialisation** (He et al., 2015), weights with standard deviation
# $\sqrt{2 / n_\mathrm{in}}$, where the fan-in $n_\mathrm{in}$ is the number of inputs of one
# neuron ($C F^2$ for a convolution with C input channels and F x F filters);
# `ThreeLayerConvNet` uses one
# hand-picked `weight_scale` for all its layers. Why the scale matters: the first cell sends
# 1,000 random inputs through 10 fully-connected ReLU layers of 256 neurons and prints the
# standard deviation of each layer's output, for a small scale, for $\sqrt{1/n_\mathrm{in}}$
# (the fan-in form of Xavier/Glorot's scale, derived for layers without ReLU; their paper's
# $\sqrt{2/(n_\mathrm{in}+n_\mathrm{out})}$ is the same here, where every layer has 256 inputs
# and outputs), for He's scale and for a large one.

# %%
DEPTH, WIDTH = 10, 256
init_scales = {"small (0.01)": 0.01, "Xavier sqrt(1/fan_in)": np.sqrt(1 / WIDTH),
               "He sqrt(2/fan_in)": np.sqrt(2 / WIDTH), "large (0.2)": 0.2}
rng = np.random.default_rng(10)
inputs = rng.standard_normal((1000, WIDTH))
layer_stds = {}
for label, std in init_scales.items():
    h, stds = inputs, []
    for _ in range(DEPTH):
        weights = std * rng.standard_normal((WIDTH, WIDTH))
        h = layers.relu_forward(layers.affine_forward(h, weights, np.zeros(WIDTH))[0])[0]
        stds.append(float(h.std()))
    layer_stds[label] = stds
print(f"{'weights':>22}" + "".join(f"{f'layer {i}':>10}" for i in (1, 2, 5, 10)))
for label, stds in layer_stds.items():
    print(f"{label:>22}" + "".join(f"{stds[i - 1]:>10.3g}" for i in (1, 2, 5, 10)))
for label, stds in layer_stds.items():
    plt.semilogy(range(1, DEPTH + 1), stds, "o-", label=label)
plt.xlabel("layer")
plt.ylabel("std of the layer's output (log scale)")
plt.title(f"{DEPTH} ReLU layers of {WIDTH} neurons, inputs of std 1")
plt.legend()
plt.show()

# %% [markdown]
# What it does to training: the same six-layer ReLU network (`ConvNet` from a spec of
# fully-connected layers) trained by SGD with momentum on the same data with the same budget,
# once with weights of std 0.01 everywhere and once with He initialisation.

# %%
def deep_mlp(depth=6, width=100):
    """Flatten, then ``depth`` fully-connected ReLU layers of ``width``, then 10 scores."""
    hidden = [layer for _ in range(depth) for layer in (arch.FC(width), arch.ReLU())]
    return arch.Spec("deep_mlp", (1, 28, 28), (arch.Flatten(), *hidden, arch.FC(10)))


init_runs = {}
for label, weight_scale in (("std 0.01", 1e-2), ("He", None)):
    run = Solver(ConvNet(deep_mlp(), weight_scale=weight_scale, seed=0), data,
                 update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                 num_epochs=COMPARE_EPOCHS, batch_size=50, num_train_samples=200,
                 num_val_samples=500, seed=0, verbose=False, time_budget=MAX_SECONDS)
    init_runs[label] = run.train()
for label, run in init_runs.items():
    losses = np.asarray(run.loss_history)
    print(f"{label:>9}: training loss {losses[:5].mean():.3f} -> {losses[-5:].mean():.3f} "
          f"(ln 10 = {np.log(10):.3f}), best validation accuracy {run.best_val_acc:.2f}")
    plt.plot(losses, alpha=0.8, label=label)
plt.xlabel("iteration")
plt.ylabel("training loss")
plt.title("six ReLU layers: weight scale 0.01 vs He")
plt.legend()
plt.show()

# %% [markdown]
# The weights of the network you trained in part 3: each one's fan-in and the He scale for it,
# next to the standard deviation of the weights after training.

# %%
print(f"{'weights':>8}{'shape':>18}{'fan_in':>8}{'He std':>9}{'std now':>9}")
for name in sorted(p for p in solver.model.params if p.startswith("W")):
    weights = solver.model.params[name]
    fan_in = int(np.prod(weights.shape[1:])) if weights.ndim == 4 else weights.shape[0]
    print(f"{name:>8}{str(weights.shape):>18}{fan_in:>8}{np.sqrt(2 / fan_in):>9.4f}"
          f"{weights.std():>9.4f}")

# %% [markdown]
# **Question (2 points).**
# (a) Derive He's scale. Take one neuron $y = \sum_{i=1}^{n} w_i x_i$ with $n$ = fan-in,
# weights independent, of mean 0 and variance $\mathrm{Var}[w]$, independent of the inputs,
# and inputs $x_i = \max(0, y'_i)$ where the previous layer's $y'_i$ is symmetric around 0.
# Show that $\mathrm{Var}[y] = n \, \mathrm{Var}[w] \, E[x^2]$ and
# $E[x^2] = \mathrm{Var}[y'] / 2$,
# and conclude which $\mathrm{Var}[w]$ keeps the variance the same from layer to layer.
# (b) By what factor per layer does your derivation predict the standard deviation changes for
# the small scale and for Xavier's scale in the plot above, and does the printed table agree?
# (c) Why did the network with std 0.01 not learn, and why could part 3's network train
# although its scale was picked by hand?

# %% [markdown] answer: q_he_init (2 points)
# **Reference answer.** (a) The terms $w_i x_i$ are independent with mean 0 (since
# $E[w_i] = 0$), so $\mathrm{Var}[y] = \sum_i \mathrm{Var}[w_i x_i] = n \, \mathrm{Var}[w] \,
# E[x^2]$ (for independent $w$ and $x$ with $E[w] = 0$: $\mathrm{Var}[wx] = E[w^2] E[x^2]$;
# note $E[x^2]$, not $\mathrm{Var}[x]$, because a ReLU output has a positive mean). If $y'$ is
# symmetric around 0, $\max(0, y')^2$ keeps exactly the half of $y'^2$ where $y' > 0$, so
# $E[x^2] = E[y'^2] / 2 = \mathrm{Var}[y'] / 2$. Hence
# $\mathrm{Var}[y] = \frac{n}{2} \mathrm{Var}[w] \, \mathrm{Var}[y']$, which stays constant iff
# $\mathrm{Var}[w] = 2 / n$, i.e. std $\sqrt{2 / n_\mathrm{in}}$. (b) The std is multiplied by
# $\sqrt{n \, \mathrm{Var}[w] / 2}$ per layer: for std 0.01 and n = 256 that is
# $\sqrt{256 \cdot 10^{-4} / 2} \approx 0.11$, so the signal shrinks about ninefold per layer
# and has all but vanished after 10 layers; Xavier's $\mathrm{Var}[w] = 1/n$ gives
# $\sqrt{1/2} \approx 0.71$ per layer, a slow decay (about $2^{-5}$ over 10 layers); He keeps
# it flat; std 0.2 gives $\sqrt{256 \cdot 0.04 / 2} \approx 2.3$, an explosion. The table
# agrees within sampling noise. (c) With std 0.01 the last layers' inputs are nearly 0: all
# scores are equal (loss stuck at ln 10) and the backward pass shrinks the gradient by the same
# factor per layer, so the first layers' gradients vanish and SGD makes no progress within the
# budget. Part 3's network has only three weight layers (the shrinkage compounds over few
# layers, and the table above shows its scale within a small factor of He's), and Adam
# rescales each parameter's step by its gradient's running magnitude, which compensates for
# small gradients.
