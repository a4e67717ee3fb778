"""Small, fast regularization experiments on MNIST digits, for the notebook. Given code.

- ``l2_vs_weight_decay``: L2 in the loss vs weight decay in the optimizer, SGD and Adam;
- ``make_mlp`` / ``fit``: a small MLP with optional dropout and batch norm, and its training loop;
- ``early_stopping``: stop when the validation loss has not improved for ``patience`` epochs;
- ``bagging``: an ensemble of MLPs trained on bootstrap samples.

Every experiment uses a few hundred or thousand digits and full-batch or few-batch epochs, so it
runs in seconds on a laptop CPU.
"""

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional

Data = tuple[torch.Tensor, torch.Tensor]


def l2_vs_weight_decay(
    steps: int = 100, lam: float = 0.1, lr: float = 0.05, seed: int = 0
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Train the same linear regression (float64) four ways; record ||w|| at every step.

        L2 in the loss:   L(w) + lam / 2 ||w||^2    -> gradient g + lam w, then the optimizer
        weight decay:     w <- w - lr * lam * w      applied by the optimizer, outside the loss

    For plain SGD both give w <- w - lr (g + lam w): the same update. Adam divides the gradient
    (including lam w) by its running RMS, so Adam + L2 decays large-gradient weights less;
    AdamW applies the decay after Adam's step, decoupled from it. So Adam + L2 != AdamW.

    Returns a tuple of:
    - norms: dict run name -> list of ||w|| after each step
    - differences: dict "SGD" / "Adam" -> max |w1 - w2| between the final weights of the pair
    """
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-1, 0.5, 10, dtype=torch.float64)
    x = torch.randn(64, 10, generator=generator, dtype=torch.float64) * scales
    noise = 0.1 * torch.randn(64, generator=generator, dtype=torch.float64)
    y = x @ torch.randn(10, generator=generator, dtype=torch.float64) + noise
    w0 = torch.randn(10, generator=generator, dtype=torch.float64)

    def run(optimizer_class: type, l2_in_loss: bool, weight_decay: float) -> tuple:
        w = w0.clone().requires_grad_(True)
        optimizer = optimizer_class([w], lr=lr, weight_decay=weight_decay)
        norms = []
        for _ in range(steps):
            loss = functional.mse_loss(x @ w, y)
            if l2_in_loss:
                loss = loss + lam / 2 * w.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            norms.append(w.norm().item())
        return norms, w.detach()

    runs = {
        "SGD + L2 in the loss": run(torch.optim.SGD, True, 0.0),
        "SGD with weight decay": run(torch.optim.SGD, False, lam),
        "Adam + L2 in the loss": run(torch.optim.Adam, True, 0.0),
        "AdamW (decoupled weight decay)": run(torch.optim.AdamW, False, lam),
    }
    norms = {name: run_norms for name, (run_norms, _) in runs.items()}
    final = [w for _, w in runs.values()]
    differences = {
        "SGD": (final[0] - final[1]).abs().max().item(),
        "Adam": (final[2] - final[3]).abs().max().item(),
    }
    return norms, differences


def plot_weight_norms(norms: dict[str, list[float]]) -> plt.Figure:
    """||w|| over the steps for the four runs of ``l2_vs_weight_decay``."""
    figure, axis = plt.subplots(figsize=(10, 3.5))
    styles = ["-", "--", "-", "--"]
    for style, (name, values) in zip(styles, norms.items(), strict=True):
        axis.plot(range(1, len(values) + 1), values, style, label=name, linewidth=2)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("weight norm ||w||")
    axis.set_title("L2 regularization vs weight decay (dashed = decay in the optimizer)")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    return figure


def make_mlp(
    hidden: tuple[int, ...] = (256, 256),
    dropout: float = 0.0,
    batchnorm: bool = False,
    dropout_layer: type[nn.Module] = nn.Dropout,
    batchnorm_layer: type[nn.Module] = nn.BatchNorm1d,
) -> nn.Sequential:
    """An MLP for (N, 1, 28, 28) digits: [Linear -> (BatchNorm) -> ReLU -> (Dropout)] x k -> Linear.

    Batch norm sits before the nonlinearity (as in the batch-norm paper), dropout after it.
    ``dropout_layer`` / ``batchnorm_layer`` pick the implementation: PyTorch's by default, or
    ``your_layers.YourDropout`` / ``your_layers.YourBatchNorm1d``.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(batchnorm_layer(size))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(dropout_layer(dropout))
        width = size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of the model in eval mode on (images, labels)."""
    model.eval()
    logits = model(data[0])
    return functional.cross_entropy(logits, data[1]).item(), (
        (logits.argmax(1) == data[1]).float().mean().item()
    )


def fit(
    model: nn.Module,
    train: Data,
    val: Data,
    epochs: int,
    batch_size: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    track: bool = True,
) -> dict[str, list[float]]:
    """Train with Adam and cross-entropy; evaluate on both sets after every epoch.

    Inputs:
    - train, val: (images (N, 1, 28, 28) float in [0, 1], labels (N,) int64)
    - batch_size: None for full-batch training
    - track: False skips the evaluations after each epoch (the history stays empty)

    Returns a history dict: train_loss, train_acc, val_loss, val_acc (one value per epoch).
    """
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(train[1])
    batch_size = batch_size or n
    history: dict[str, list[float]] = {
        key: [] for key in ("train_loss", "train_acc", "val_loss", "val_acc")
    }
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(n).split(batch_size):
            loss = functional.cross_entropy(model(train[0][index]), train[1][index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if not track:
            continue
        for name, data in (("train", train), ("val", val)):
            loss, accuracy = evaluate(model, data)
            history[f"{name}_loss"].append(loss)
            history[f"{name}_acc"].append(accuracy)
    return history


def plot_histories(histories: dict[str, dict[str, list[float]]], title: str) -> plt.Figure:
    """Training and validation loss (left) and validation accuracy (right) of several runs."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for (name, history), color in zip(
        histories.items(), plt.get_cmap("tab10").colors, strict=False
    ):
        epochs = range(1, len(history["val_loss"]) + 1)
        left.plot(epochs, history["train_loss"], "--", color=color, label=f"{name} (train)")
        left.plot(epochs, history["val_loss"], "-", color=color, label=f"{name} (val)")
        right.plot(epochs, history["val_acc"], "-", color=color, label=name)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy loss (log scale)")
    left.set_title("Loss: dashed = training, solid = validation")
    left.legend(fontsize=8)
    right.set_xlabel("epoch")
    right.set_ylabel("validation accuracy")
    right.set_title("Validation accuracy")
    right.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def early_stopping(val_losses: list[float], patience: int = 10) -> tuple[int, int]:
    """Where early stopping stops, and which epoch's weights it keeps (epochs count from 1).

    Training stops after ``patience`` epochs in a row without a new best validation loss; the
    weights of the best epoch are restored.

    Returns (stop_epoch, best_epoch).
    """
    best_epoch, best_loss = 1, float("inf")
    for epoch, loss in enumerate(val_losses, start=1):
        if loss < best_loss:
            best_epoch, best_loss = epoch, loss
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return len(val_losses), best_epoch


def plot_early_stopping(history: dict[str, list[float]], stop: int, best: int) -> plt.Figure:
    """Training and validation loss of an overfitting model with the stopping point marked."""
    figure, axis = plt.subplots(figsize=(7, 3.6))
    epochs = range(1, len(history["val_loss"]) + 1)
    axis.plot(epochs, history["train_loss"], label="training loss")
    axis.plot(epochs, history["val_loss"], label="validation loss")
    axis.axvline(
        stop, color="tab:red", linestyle="--", label=f"early stopping stops (epoch {stop})"
    )
    axis.plot(best, history["val_loss"][best - 1], "o", color="tab:red", markersize=9)
    axis.annotate(
        f"best weights kept (epoch {best})",
        (best, history["val_loss"][best - 1]),
        textcoords="offset points",
        xytext=(10, 15),
    )
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy loss (log scale)")
    axis.set_title("Early stopping on an overfitting MLP")
    axis.legend()
    figure.tight_layout()
    return figure


def bagging(
    train: Data, val: Data, members: int = 5, epochs: int = 30, seed: int = 0
) -> dict[str, object]:
    """Bagging: train ``members`` MLPs, each on a bootstrap sample of the training set.

    A bootstrap sample draws N indices with replacement from the N training examples (about 63%
    distinct ones). The ensemble averages the members' softmax probabilities.

    Returns a dict: member accuracies (list), ensemble accuracy, mean member accuracy.
    """
    n = len(train[1])
    generator = torch.Generator().manual_seed(seed)
    probabilities, accuracies = [], []
    for member in range(members):
        index = torch.randint(n, (n,), generator=generator)
        torch.manual_seed(seed + member)
        model = make_mlp(hidden=(128,))
        member_train = (train[0][index], train[1][index])
        fit(model, member_train, val, epochs=epochs, seed=seed + member, track=False)
        with torch.no_grad():
            probability = model.eval()(val[0]).softmax(dim=1)
        probabilities.append(probability)
        accuracies.append((probability.argmax(1) == val[1]).float().mean().item())
    ensemble = torch.stack(probabilities).mean(0).argmax(1)
    return {
        "member accuracies": accuracies,
        "mean member accuracy": sum(accuracies) / members,
        "ensemble accuracy": (ensemble == val[1]).float().mean().item(),
    }


def plot_bagging(result: dict[str, object]) -> plt.Figure:
    """Validation accuracy of each bagged member and of their ensemble."""
    accuracies = result["member accuracies"]
    names = [f"member {k + 1}" for k in range(len(accuracies))] + ["ensemble"]
    values = [*accuracies, result["ensemble accuracy"]]
    colors = ["tab:blue"] * len(accuracies) + ["tab:orange"]
    figure, axis = plt.subplots(figsize=(7, 3.4))
    bars = axis.bar(names, values, color=colors)
    axis.bar_label(bars, fmt="%.3f")
    axis.axhline(result["mean member accuracy"], color="gray", linestyle="--", label="member mean")
    axis.set_ylim(min(values) - 0.05, max(values) + 0.03)
    axis.set_ylabel("validation accuracy")
    axis.set_title("Bagging: the ensemble of bootstrap-trained MLPs beats its members")
    axis.legend(handles=[bars[0], bars[-1], axis.lines[0]], labels=["member", "ensemble", "mean"])
    figure.tight_layout()
    return figure
