"""Training loops for the autoencoder and the classifier, and how to evaluate them.

The loops are given: they shuffle, batch, show a progress bar with the running loss and record
a history of the losses. You implement what happens with ONE batch: the training steps and the
validation steps, between the solution markers. Each of your regions starts with the names it
must set (``loss = None``, ``logits = None``); the given line after it returns them.

Every function takes images as float32 tensors (N, 1, 28, 28) in [0, 1].
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augmentation import Transform, augment_batch, strong_augmentation

History = dict[str, list[float] | int]
"""What a training returns: one float per epoch under "train_loss", "val_loss", ... and, for a
classifier, "best_epoch": the 0-based epoch whose weights were kept (an int)."""
UnlabeledOptions = dict
"""How ``train_epoch`` uses unlabeled images: "images" (N, 1, 28, 28), "batch_size", "weight",
"threshold" (see ``consistency_loss``) and "generator" (for the draws)."""


def reconstruction_loss(
    reconstruction: torch.Tensor, images: torch.Tensor, kind: str = "l2"
) -> torch.Tensor:
    """Per-pixel reconstruction loss, averaged over all pixels of all images.

        L2:  1 / (N * D) * sum_i sum_d (x_hat_id - x_id)^2
        L1:  1 / (N * D) * sum_i sum_d |x_hat_id - x_id|

    Inputs:
    - reconstruction: x_hat, shape (N, 1, 28, 28).
    - images: x, the same shape.
    - kind: "l2" (mean squared error) or "l1" (mean absolute error).

    Returns a scalar tensor.
    """
    if kind == "l2":
        return F.mse_loss(reconstruction, images)
    if kind == "l1":
        return F.l1_loss(reconstruction, images)
    raise ValueError(f"Unknown reconstruction loss {kind!r}; use 'l2' or 'l1'.")


def count_correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of images whose highest logit is the true class. logits (N, 10), labels (N,)."""
    return int((logits.argmax(dim=1) == labels).sum())


# --- One batch: what you implement -------------------------------------------------------------


def autoencoder_train_step(
    model: nn.Module, images: torch.Tensor, optimizer: torch.optim.Optimizer, loss_kind: str = "l2"
) -> float:
    """One gradient step of the autoencoder on a batch.

    Reconstruct the images, compute the reconstruction loss against the images themselves
    (no labels needed), reset the gradients, backpropagate and update the weights.

    Inputs:
    - model: the autoencoder, already in training mode.
    - images: a batch (N, 1, 28, 28).
    - optimizer: updates the model's parameters.
    - loss_kind: "l2" or "l1", passed to ``reconstruction_loss``.

    Returns the batch loss as a Python float.
    """
    # loss: the reconstruction loss of this batch, a scalar tensor. Compute it, then
    # optimizer.zero_grad(), loss.backward() and optimizer.step().
    loss = None
    ### BEGIN SOLUTION
    loss = reconstruction_loss(model(images), images, loss_kind)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ### END SOLUTION
    return loss.item()


@torch.no_grad()
def autoencoder_val_step(model: nn.Module, images: torch.Tensor, loss_kind: str = "l2") -> float:
    """The reconstruction loss of a batch, without changing the model (no gradients).

    Inputs:
    - model: the autoencoder, already in evaluation mode.
    - images: a batch (N, 1, 28, 28).
    - loss_kind: "l2" or "l1".

    Returns the batch loss as a Python float.
    """
    # loss: the reconstruction loss of this batch, a scalar tensor (no backward, no step).
    loss = None
    ### BEGIN SOLUTION
    loss = reconstruction_loss(model(images), images, loss_kind)
    ### END SOLUTION
    return loss.item()


def classifier_train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
) -> tuple[float, int]:
    """One gradient step of the classifier on a batch, with the cross-entropy loss.

        loss = -1/N * sum_i log softmax(logits_i)[y_i]     (F.cross_entropy)

    Inputs:
    - model: the classifier, already in training mode.
    - images: a batch (N, 1, 28, 28); labels: (N,) int64 class indices.
    - optimizer: updates the parameters that are being trained.

    Returns (the batch loss as a float, the number of correctly classified images).
    """
    # logits: the model's raw scores (N, 10) for the batch; loss: their cross-entropy with the
    # labels, a scalar tensor. Then optimizer.zero_grad(), loss.backward(), optimizer.step().
    logits, loss = None, None
    ### BEGIN SOLUTION
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ### END SOLUTION
    return loss.item(), count_correct(logits, labels)


@torch.no_grad()
def classifier_val_step(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[float, int]:
    """The cross-entropy loss and the number of correct predictions of a batch, no gradients.

    Inputs:
    - model: the classifier, already in evaluation mode.
    - images: a batch (N, 1, 28, 28); labels: (N,) int64 class indices.

    Returns (the batch loss as a float, the number of correctly classified images).
    """
    # logits: the model's raw scores (N, 10); loss: their cross-entropy with the labels.
    logits, loss = None, None
    ### BEGIN SOLUTION
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    ### END SOLUTION
    return loss.item(), count_correct(logits, labels)


# --- Using the unlabeled images while the classifier trains: given -----------------------------


def consistency_loss(
    model: nn.Module,
    unlabeled: torch.Tensor,
    threshold: float = 0.95,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pseudo-label consistency on a batch of unlabeled images (FixMatch, Sohn et al., 2020).

    The model labels each untouched image itself, without gradients; where it is confident,
    that label becomes the target for a strongly augmented copy of the image:

        p_i = softmax(model(u_i)),   y_i = argmax p_i,   keep_i = [max p_i >= threshold]
        loss = 1/N * sum_i keep_i * CE(model(strong(u_i)), y_i)

    So what the model knows about confident images spreads to their moved, rotated and partly
    hidden versions: the 59,700 unlabeled images teach which changes keep a digit a digit.

    Inputs:
    - model: the classifier, in training mode.
    - unlabeled: a batch (N, 1, 28, 28).
    - threshold: the confidence an image needs to count.
    - generator: source of the strong augmentation's random draws.

    Returns a scalar tensor (0 when no image is confident enough).
    """
    with torch.no_grad():
        confidence, pseudo_labels = model(unlabeled).softmax(dim=1).max(dim=1)
    keep = (confidence >= threshold).float()
    logits = model(strong_augmentation(unlabeled, generator))
    return (F.cross_entropy(logits, pseudo_labels, reduction="none") * keep).mean()


def semi_supervised_train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    unlabeled: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    weight: float = 1.0,
    threshold: float = 0.95,
    generator: torch.Generator | None = None,
) -> tuple[float, int]:
    """One step on a labeled batch and an unlabeled batch together:

        loss = CE(model(images), labels) + weight * consistency_loss(model, unlabeled)

    Returns (the labeled batch's cross-entropy as a float, the number of correct labeled images),
    as ``classifier_train_step`` does, so the histories of both kinds of training compare.
    """
    logits = model(images)
    supervised = F.cross_entropy(logits, labels)
    loss = supervised + weight * consistency_loss(model, unlabeled, threshold, generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return supervised.item(), count_correct(logits, labels)


# --- The loops: given ---------------------------------------------------------------------------


def batches(num_items: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering range(num_items) once (the last one may be smaller)."""
    yield from torch.randperm(num_items, generator=generator).split(batch_size)


def train_autoencoder(
    model: nn.Module,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    epochs: int = 3,
    batch_size: int = 256,
    lr: float = 1e-3,
    loss_kind: str = "l2",
    seed: int = 0,
) -> History:
    """Train the autoencoder with Adam on unlabeled images; validate after every epoch.

    Inputs:
    - model: the autoencoder.
    - train_images: (N, 1, 28, 28); val_images: (M, 1, 28, 28), used only to measure the loss.
    - epochs, batch_size, lr: the usual; loss_kind: "l2" or "l1".
    - seed: seeds the shuffling.

    Returns the history: "train_loss" and "val_loss" (one value per epoch) and "batch_loss"
    (one value per training step).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: History = {"train_loss": [], "val_loss": [], "batch_loss": []}
    steps_per_epoch = -(-len(train_images) // batch_size)
    with tqdm(total=epochs * steps_per_epoch, desc="autoencoder", unit="batch") as bar:
        for epoch in range(epochs):
            model.train()
            total = 0.0
            for step, index in enumerate(batches(len(train_images), batch_size, generator)):
                loss = autoencoder_train_step(model, train_images[index], optimizer, loss_kind)
                history["batch_loss"].append(loss)
                total += loss
                running = f"{total / (step + 1):.4f}"
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=running, refresh=False)
                bar.update()
            history["train_loss"].append(total / steps_per_epoch)
            history["val_loss"].append(evaluate_autoencoder(model, val_images, loss_kind))
    print(
        f"Autoencoder after {epochs} epochs: train loss {history['train_loss'][-1]:.4f}, "
        f"val loss {history['val_loss'][-1]:.4f}"
    )
    return history


@torch.no_grad()
def evaluate_autoencoder(
    model: nn.Module, images: torch.Tensor, loss_kind: str = "l2", batch_size: int = 2048
) -> float:
    """Mean reconstruction loss over ``images`` (N, 1, 28, 28), in evaluation mode."""
    model.eval()
    total = 0.0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        total += autoencoder_val_step(model, batch, loss_kind) * len(batch)
    return total / len(images)


def make_optimizer(
    model: nn.Module, lr: float, encoder_lr: float | None = None
) -> torch.optim.Optimizer:
    """Adam for a Classifier, with its own learning rate for the encoder.

    - encoder_lr=None: the encoder trains with the same learning rate as the head.
    - encoder_lr > 0: a separate (usually lower) rate, so pretrained features change slowly.
    - encoder_lr=0: the optimizer gets the head's parameters only (it changes nothing else;
      ``train_classifier`` freezes the encoder in that case).
    """
    encoder_lr = lr if encoder_lr is None else encoder_lr
    groups = [{"params": model.head.parameters(), "lr": lr}]
    if encoder_lr > 0:
        groups.append({"params": model.encoder.parameters(), "lr": encoder_lr})
    return torch.optim.Adam(groups)


def train_epoch(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    transform: Transform | None = None,
    augment_group: int = 1,
    unlabeled: UnlabeledOptions | None = None,
) -> tuple[float, float]:
    """One pass over the shuffled training data in training mode; returns (loss, accuracy).

    With ``unlabeled`` every step also draws ``batch_size`` unlabeled images at random and adds
    their consistency loss (``semi_supervised_train_step``); the loss returned is the labeled
    images' cross-entropy either way."""
    images, labels = train_data
    model.train()
    total_loss, correct = 0.0, 0
    for index in batches(len(images), batch_size, generator):
        batch = augment_batch(images[index], transform, augment_group)
        if unlabeled is None:
            loss, right = classifier_train_step(model, batch, labels[index], optimizer)
        else:
            pool, draws = unlabeled["images"], unlabeled["generator"]
            chosen = torch.randint(len(pool), (unlabeled["batch_size"],), generator=draws)
            loss, right = semi_supervised_train_step(
                model,
                batch,
                labels[index],
                pool[chosen],
                optimizer,
                unlabeled["weight"],
                unlabeled["threshold"],
                draws,
            )
        total_loss += loss * len(index)
        correct += right
    return total_loss / len(images), correct / len(images)


def train_classifier(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    val_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    epochs: int = 100,
    batch_size: int = 25,
    lr: float = 1e-3,
    encoder_lr: float | None = None,
    transform: Transform | None = None,
    augment_group: int = 1,
    unlabeled: torch.Tensor | None = None,
    unlabeled_batch_size: int = 64,
    consistency_weight: float = 1.0,
    consistency_threshold: float = 0.95,
    seed: int = 0,
    desc: str = "classifier",
) -> History:
    """Train a Classifier with Adam and cross-entropy; keep the epoch with the best val accuracy.

    Early stopping, the cheap way: after every epoch the model is validated; at the end the
    weights of the epoch with the highest validation accuracy (ties: lowest validation loss)
    are restored. Without ``val_data`` the last epoch is kept.

    Inputs:
    - model: a Classifier (it has ``.encoder`` and ``.head``).
    - train_data: (images (N, 1, 28, 28), labels (N,)); val_data: the same, or None.
    - epochs, batch_size, lr: the usual.
    - encoder_lr: the encoder's learning rate: None for the same as lr, a lower one so that
      pretrained features change slowly, or 0 to FREEZE the encoder for this training: its
      parameters get requires_grad=False (autograd computes no gradients for them and the
      optimizer leaves them out) and are unfrozen again when the training ends.
    - transform: augmentation of the training images, e.g. a torchvision v2 transform;
      augment_group: how many images share one random draw (see augmentation.augment_batch).
    - unlabeled: unlabeled images (M, 1, 28, 28) to keep learning from while the labels train
      the model, or None (labels only). Each step then adds ``consistency_weight`` times the
      consistency loss of ``unlabeled_batch_size`` random unlabeled images (see
      ``consistency_loss``; ``consistency_threshold`` is its confidence threshold).
    - seed: seeds the shuffling (and, with ``unlabeled``, the unlabeled draws: seed + 1000).

    Returns the history: "train_loss", "train_acc", "val_loss", "val_acc" per epoch, and
    "best_epoch", the 0-based epoch that was kept (an int).
    """
    generator = torch.Generator().manual_seed(seed)
    semi_supervised: UnlabeledOptions | None = None
    if unlabeled is not None:
        semi_supervised = {
            "images": unlabeled,
            "batch_size": unlabeled_batch_size,
            "weight": consistency_weight,
            "threshold": consistency_threshold,
            "generator": torch.Generator().manual_seed(seed + 1000),
        }
    freeze_encoder = encoder_lr == 0
    model.encoder.requires_grad_(not freeze_encoder)
    optimizer = make_optimizer(model, lr, encoder_lr)
    history: History = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    best, best_state, best_epoch = None, None, epochs - 1
    try:
        with tqdm(total=epochs, desc=desc, unit="epoch") as bar:
            for epoch in range(epochs):
                train_loss, train_acc = train_epoch(
                    model,
                    train_data,
                    optimizer,
                    batch_size,
                    generator,
                    transform,
                    augment_group,
                    semi_supervised,
                )
                history["train_loss"].append(train_loss)
                history["train_acc"].append(train_acc)
                postfix = {"loss": f"{train_loss:.3f}"}
                if val_data is not None:
                    val_loss, val_acc = evaluate_classifier(model, *val_data)
                    history["val_loss"].append(val_loss)
                    history["val_acc"].append(val_acc)
                    postfix["val_acc"] = f"{val_acc:.2f}"
                    if best is None or (val_acc, -val_loss) > best:
                        best, best_epoch = (val_acc, -val_loss), epoch
                        best_state = copy.deepcopy(model.state_dict())
                bar.set_postfix(postfix, refresh=False)
                bar.update()
    finally:
        model.encoder.requires_grad_(True)  # frozen for this training only
    if best_state is not None:
        model.load_state_dict(best_state)
    history["best_epoch"] = best_epoch
    model.eval()
    return history


def join_histories(first: History, second: History) -> History:
    """The history of two trainings of one model, one after the other (e.g. steps 1 and 2).

    The per-epoch lists are concatenated; "best_epoch" is the second run's, counted from the
    start of the first, so plots mark the epoch that was kept in the end.
    """
    joined = {
        key: first.get(key, []) + values
        for key, values in second.items()
        if isinstance(values, list)
    }
    if "best_epoch" in second:
        joined["best_epoch"] = len(first["train_loss"]) + second["best_epoch"]
    return joined


def _eval_mode(model: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Put an nn.Module in evaluation mode; a loaded exported program already is (it was
    exported in eval mode, and it refuses .eval())."""
    if isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule):
        model.eval()


@torch.no_grad()
def evaluate_classifier(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 2048,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier on (images (N, 1, 28, 28), labels (N,))."""
    _eval_mode(model)
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        batch, batch_labels = images[start : start + batch_size], labels[start : start + batch_size]
        loss, right = classifier_val_step(model, batch, batch_labels)
        total_loss += loss * len(batch)
        correct += right
    return total_loss / len(images), correct / len(images)


@torch.no_grad()
def predict(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 2048
) -> torch.Tensor:
    """The logits (N, 10) of a classifier (an nn.Module or a loaded exported program)."""
    _eval_mode(model)
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Fraction of correctly classified images."""
    return count_correct(predict(model, images), labels) / len(labels)


def accuracies(
    model: Callable[[torch.Tensor], torch.Tensor],
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, float]:
    """The accuracy on each named split, e.g. {"val": (images, labels), "public test": ...}."""
    return {name: accuracy(model, images, labels) for name, (images, labels) in splits.items()}
