"""Going further (ungraded, given): 100 labels, linear layers only, as far as it goes.

The final model (section 8) learns from the unlabeled images with a consistency loss for a
short while. Here the same idea gets a network of its own and more time, with only the 100
labeled training images:

- **Consistency with pseudo-labels** (FixMatch: Sohn et al., 2020, "FixMatch: Simplifying
  semi-supervised learning with consistency and confidence"): the network labels each
  unlabeled image itself; where it is confident, that label is the target for a strongly
  augmented copy of the image (``training.consistency_loss``). Labels reach image after image
  as the network grows confident, a kind of pseudo-labelling (Lee, 2013) that never stops.
- **Batch normalization** between the linear layers (Ioffe and Szegedy, 2015), as in the
  ladder networks (Rasmus et al., 2015) and virtual adversarial training (Miyato et al., 2018)
  that hold the published records for linear layers with 100 labels. In evaluation mode it is a
  fixed scale and shift per feature, which the hand-in rules allow, so the result may be handed
  in like any other classifier (``save_model``).

``run_going_further`` is what the notebook's last cell runs.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augmentation import cutout, random_affine
from .training import accuracy


def going_further_network(hidden_sizes: tuple[int, ...] = (1000, 500, 250)) -> nn.Sequential:
    """An MLP with batch normalization:

        flatten 784 -> [Linear -> BatchNorm1d -> ReLU] for each hidden size -> Linear(h_k, 10)

    Input: images (N, 1, 28, 28) in [0, 1]. Output: logits (N, 10).
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = 784
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def weak(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The labeled images' augmentation: ``digit_augmentation``'s strength, drawn per image."""
    return random_affine(images, 10, 0.1, 0.1, 0, generator)


def strong(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The unlabeled images' strong augmentation: a larger affine move and an 8 x 8 cutout."""
    return cutout(random_affine(images, 20, 0.15, 0.15, 10, generator), 8, generator)


def train_fixmatch(
    model: nn.Module,
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    steps: int = 8000,
    labeled_batch_size: int = 64,
    unlabeled_batch_size: int = 256,
    threshold: float = 0.95,
    lr: float = 1e-3,
    evaluate: tuple[torch.Tensor, torch.Tensor] | None = None,
    evaluate_every: int = 1000,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Train ``model`` on the labeled images and the consistency loss of the unlabeled ones.

    Every step draws ``labeled_batch_size`` labeled images (with replacement, weakly augmented)
    and ``unlabeled_batch_size`` unlabeled ones:

        loss = CE(model(weak(x)), y) + 1/N * sum_i keep_i * CE(model(strong(u_i)), y_i)

    where y_i is the model's own class for the untouched image u_i and keep_i whether it was at
    least ``threshold`` sure of it (``training.consistency_loss``, with a milder strong
    augmentation here: ``strong``).

    with Adam and a cosine learning-rate schedule from ``lr`` to 0 over ``steps``.

    Inputs:
    - model: any classifier (N, 1, 28, 28) -> (N, 10); labeled: (images (L, 1, 28, 28), labels
      (L,)); unlabeled: (M, 1, 28, 28).
    - evaluate: (images, labels) whose accuracy is recorded every ``evaluate_every`` steps.

    Returns the records: step, seconds, the running losses, the confident fraction and (with
    ``evaluate``) the accuracy.
    """
    images, labels = labeled
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )
    records: list[dict[str, float]] = []
    running = {"labeled": 0.0, "unlabeled": 0.0, "confident": 0.0}
    started = time.perf_counter()
    with tqdm(total=steps, desc="going further", unit="step") as bar:
        for step in range(1, steps + 1):
            model.train()
            chosen = torch.randint(len(images), (labeled_batch_size,), generator=generator)
            drawn = torch.randint(len(unlabeled), (unlabeled_batch_size,), generator=generator)
            batch = unlabeled[drawn]
            with torch.no_grad():
                confidence, pseudo_labels = model(batch).softmax(dim=1).max(dim=1)
            keep = (confidence >= threshold).float()
            # one forward pass for both, so batch norm sees labeled and unlabeled images together
            logits = model(torch.cat([weak(images[chosen], generator), strong(batch, generator)]))
            supervised = F.cross_entropy(logits[:labeled_batch_size], labels[chosen])
            losses = F.cross_entropy(logits[labeled_batch_size:], pseudo_labels, reduction="none")
            consistency, confident = (losses * keep).mean(), float(keep.mean())
            optimizer.zero_grad()
            (supervised + consistency).backward()
            optimizer.step()
            schedule.step()
            for key, value in (
                ("labeled", supervised.item()),
                ("unlabeled", consistency.item()),
                ("confident", confident),
            ):
                running[key] = 0.98 * running[key] + 0.02 * value
            bar.set_postfix(
                loss=f"{running['labeled']:.3f}+{running['unlabeled']:.3f}",
                confident=f"{running['confident']:.0%}",
                refresh=False,
            )
            bar.update()
            if step % evaluate_every == 0 or step == steps:
                record = {"step": step, "seconds": time.perf_counter() - started, **running}
                if evaluate is not None:
                    record["accuracy"] = accuracy(model, *evaluate)
                    bar.set_postfix(accuracy=f"{record['accuracy']:.4f}", refresh=False)
                records.append(record)
    model.eval()
    return records


def run_going_further(
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int = 0,
    steps: int = 8000,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """The notebook's going-further experiment: ``going_further_network`` trained with
    ``train_fixmatch`` on ``labeled`` (the 100 labeled training images) and the unlabeled
    images; prints the test accuracy as it goes. Returns (the model in eval mode, the records).
    """
    torch.manual_seed(seed)
    model = going_further_network()
    records = train_fixmatch(model, labeled, unlabeled, steps, evaluate=test, seed=seed)
    for record in records:
        print(
            f"step {record['step']:5d} ({record['seconds']:4.0f} s): "
            f"{record['confident']:.0%} of the unlabeled images confident, "
            f"test accuracy {record['accuracy']:.4f}"
        )
    return model, records
