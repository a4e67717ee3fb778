"""Going further (ungraded, given): virtual adversarial training with entropy minimization.

With 100 labels, a network needs to learn from the 59,700 unlabeled images what a digit class
looks like. Virtual adversarial training (VAT; Miyato et al., 2018, "Virtual adversarial
training: a regularization method for supervised and semi-supervised learning", TPAMI) asks the
classifier to give every unlabeled image the same prediction as that image plus the small
perturbation r_adv that changes the prediction most. The labels are not needed for that: the
direction is found from the model's own prediction, with one extra forward and backward pass.
So the classifier becomes smooth around every image, and the boundaries between classes move
into the empty space between the clusters of digits. Entropy minimization (Grandvalet & Bengio,
2005) pushes the same way: it rewards confident predictions on the unlabeled images.

The network is a plain multilayer perceptron with batch norm, 784-1200-600-300-150-10, the one
of the VAT paper's permutation-invariant MNIST experiments; it follows the rules of a handed-in
model (linear layers, ReLU and batch norm in eval mode only).

``run_going_further`` is what the notebook's last cell runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .training import accuracy

VAT_HIDDEN_SIZES = (1200, 600, 300, 150)


def batch_norm_mlp(hidden_sizes: tuple[int, ...] = VAT_HIDDEN_SIZES) -> nn.Sequential:
    """A classifier of linear layers, each hidden one followed by batch norm and ReLU:

        flatten 784 -> [Linear(n, h) -> BatchNorm1d(h) -> ReLU] for h in hidden_sizes
                    -> Linear(h_k, 10)

    Takes images (N, 1, 28, 28) in [0, 1]; returns logits (N, 10).
    """
    layers: list[nn.Module] = [nn.Flatten()]
    n_in = 28 * 28
    for n_out in hidden_sizes:
        layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]
        n_in = n_out
    layers.append(nn.Linear(n_in, 10))
    return nn.Sequential(*layers)


def random_shift(
    images: torch.Tensor, max_shift: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Move every image by its own random whole number of pixels, up to ``max_shift`` in each
    direction (the border filled with 0). images (N, 1, H, W); returns (N, 1, H, W)."""
    if max_shift == 0:
        return images
    n, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(height)).unsqueeze(2)  # (N, H, 1)
    columns = (dx + torch.arange(width)).unsqueeze(1)  # (N, 1, W)
    return padded[torch.arange(n).view(n, 1, 1), 0, rows, columns].unsqueeze(1)


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(p || q) over a batch of logits (N, C): 1/N sum_i sum_c p_ic (log p_ic - log q_ic)."""
    log_p = p_logits.log_softmax(dim=1)
    return (log_p.exp() * (log_p - q_logits.log_softmax(dim=1))).sum(dim=1).mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the predictions, -1/N sum_i sum_c p_ic log p_ic, for logits (N, C)."""
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def _unit(directions: torch.Tensor) -> torch.Tensor:
    """Each direction (N, ...) scaled to L2 norm 1."""
    norms = directions.flatten(start_dim=1).norm(dim=1)
    return directions / (norms + 1e-12).view(-1, *[1] * (directions.dim() - 1))


@contextlib.contextmanager
def frozen_batch_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norm still normalizes with the batch's statistics, but its running averages (what
    the saved model uses) ignore the batches inside: the perturbed images are no real digits."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def virtual_adversarial_loss(
    model: nn.Module,
    images: torch.Tensor,
    logits: torch.Tensor,
    eps: float = 2.0,
    xi: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The virtual adversarial loss of a batch (Miyato et al., 2018), one power iteration:

        d random with ||d|| = 1,   g = grad_r KL(p(y|x) || p(y|x + r)) at r = xi * d,
        r_adv = eps * g / ||g||,   loss = KL(p(y|x) || p(y|x + r_adv))

    p(y|x) is held fixed (no gradient flows through it); r_adv is the perturbation of length
    eps (L2, on pixels in [0, 1]) that changes the prediction most, so the loss asks the model
    to keep its prediction in a ball of radius eps around each image.

    Inputs:
    - model: the classifier, in training mode.
    - images: unlabeled images (N, 1, 28, 28).
    - logits: model(images) (N, 10), computed by the caller.
    - eps, xi: the perturbation's length and the length of the probe that finds its direction.
    - generator: source of the random direction d.

    Returns a scalar tensor.
    """
    target = logits.detach()
    noise = torch.randn(images.shape, generator=generator)
    with frozen_batch_norm_statistics(model):
        probe = (xi * _unit(noise)).requires_grad_()
        (gradient,) = torch.autograd.grad(kl_divergence(target, model(images + probe)), probe)
        r_adv = eps * _unit(gradient)
        return kl_divergence(target, model(images + r_adv))


def vat_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    eps: float = 2.0,
    entropy_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One step of VAT with entropy minimization (VAT+EntMin in the paper):

        loss = CE(model(x_l), y_l) + KL(p(y|x_u) || p(y|x_u + r_adv)) + w * H(p(y|x_u))

    Inputs: labeled (images (L, 1, 28, 28), labels (L,)), unlabeled images (U, 1, 28, 28),
    eps (see ``virtual_adversarial_loss``), w = entropy_weight.

    Returns the three terms as floats: {"ce", "vat", "entropy"}.
    """
    images, labels = labeled
    supervised = F.cross_entropy(model(images), labels)
    logits = model(unlabeled)
    adversarial = virtual_adversarial_loss(model, unlabeled, logits, eps, generator=generator)
    confidence = entropy(logits)
    loss = supervised + adversarial + entropy_weight * confidence
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"ce": supervised.item(), "vat": adversarial.item(), "entropy": confidence.item()}


def linear_decay(steps: int, decay_from: float = 2 / 3) -> Callable[[int], float]:
    """Learning-rate factor: 1 for the first ``decay_from`` of the steps, then down to 0."""
    start = int(steps * decay_from)
    return lambda step: min(1.0, max(0.0, (steps - step) / (steps - start)))


def train_vat(
    model: nn.Module,
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    steps: int = 5000,
    unlabeled_batch_size: int = 256,
    lr: float = 2e-3,
    eps: float = 2.0,
    entropy_weight: float = 1.0,
    max_shift: int = 2,
    evaluate: tuple[torch.Tensor, torch.Tensor] | None = None,
    evaluate_every: int = 500,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Train ``model`` with ``vat_train_step``: Adam at ``lr``, linearly decayed to 0 over the
    last third of the steps. Every step takes all labeled images, each randomly shifted by up
    to ``max_shift`` pixels, and ``unlabeled_batch_size`` unlabeled images drawn at random.

    Inputs:
    - labeled: (images (L, 1, 28, 28), labels (L,)); unlabeled: (N, 1, 28, 28).
    - evaluate: (images, labels) to measure the accuracy on every ``evaluate_every`` steps.

    Returns the log: one dict per evaluation, {"step", "ce", "vat", "entropy"} and "accuracy"
    with ``evaluate``. A progress bar shows the running losses.
    """
    generator = torch.Generator().manual_seed(seed)
    images, labels = labeled
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(steps))
    log: list[dict[str, float]] = []
    model.train()
    progress = tqdm(range(1, steps + 1), desc="VAT + entropy minimization")
    for step in progress:
        chosen = torch.randint(len(unlabeled), (unlabeled_batch_size,), generator=generator)
        shifted = random_shift(images, max_shift, generator)
        losses = vat_train_step(
            model,
            optimizer,
            (shifted, labels),
            unlabeled[chosen],
            eps,
            entropy_weight,
            generator,
        )
        schedule.step()
        if step % evaluate_every == 0 or step == steps:
            entry = {"step": step, **losses}
            if evaluate is not None:
                entry["accuracy"] = accuracy(model, *evaluate)
                model.train()
            log.append(entry)
            progress.set_postfix({k: round(v, 4) for k, v in entry.items() if k != "step"})
    return log


def run_going_further(
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    steps: int = 5000,
) -> tuple[nn.Sequential, list[dict[str, float]]]:
    """The notebook's going-further experiment: a fresh ``batch_norm_mlp`` trained with VAT and
    entropy minimization (``train_vat``) on the labeled and the unlabeled images; prints the
    accuracy on ``test`` as training goes.

    Inputs:
    - labeled: (images (L, 1, 28, 28), labels (L,)): the notebook uses its 100 training labels.
    - unlabeled: (N, 1, 28, 28).
    - test: (images, labels) to report accuracies on, or None.

    Returns (the trained classifier in eval mode, the log of ``train_vat``); save the classifier
    with ``save_model`` to hand it in.
    """
    torch.manual_seed(seed)
    model = batch_norm_mlp()
    log = train_vat(model, labeled, unlabeled, steps=steps, evaluate=test, seed=seed)
    for entry in log:
        if "accuracy" in entry:
            print(f"step {entry['step']:5d}: accuracy {entry['accuracy']:.4f}")
    return model.eval(), log
