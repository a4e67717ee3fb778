"""Going further (ungraded, given): pseudo-labelling with augmentation.

Pseudo-labelling (self-training) uses the unlabeled images a second time: a trained classifier
labels them, the most confident predictions per class are kept as if they were true labels,
and a new classifier is trained on the labeled and pseudo-labeled images together. Repeating
this with more images each round lets the classifier grow into the unlabeled data.

``run_going_further`` is what the notebook's last cell runs: the rounds of pseudo-labelling,
starting from the notebook's final model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from .augmentation import digit_augmentation
from .networks import Classifier, Encoder
from .training import accuracy, predict, train_classifier


def pseudo_label(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, per_class: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the ``per_class`` most confident predictions of each predicted class.

    Inputs:
    - model: a classifier mapping (N, 1, 28, 28) to logits (N, 10).
    - images: the unlabeled images (N, 1, 28, 28).
    - per_class: how many images to keep per class (fewer if fewer are predicted).

    Returns (indices into images (M,), pseudo labels (M,), confidences (M,)).
    """
    probabilities = predict(model, images).softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    keep = []
    for digit in range(probabilities.shape[1]):
        candidates = (predicted == digit).nonzero().flatten()
        order = confidence[candidates].argsort(descending=True)
        keep.append(candidates[order[:per_class]])
    indices = torch.cat(keep)
    return indices, predicted[indices], confidence[indices]


def self_training(
    pretrained: Encoder,
    teacher: Callable[[torch.Tensor], torch.Tensor],
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    per_class: tuple[int, ...] = (1000, 3000, 5000, 5900, 5900),
    epochs: int = 15,
    labeled_repeats: int = 10,
    transform: v2.Transform | None = None,
    augment_group: int = 16,
    evaluate: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[Classifier, list[dict[str, float]]]:
    """Rounds of pseudo-labelling; each round trains a new classifier from the pretrained encoder.

    Inputs:
    - pretrained: the autoencoder's encoder (copied every round, never changed).
    - teacher: the classifier that labels the unlabeled images in the first round.
    - labeled: (images (L, 1, 28, 28), labels (L,)); repeated ``labeled_repeats`` times in
      every round so the true labels keep their weight among thousands of pseudo-labels.
    - unlabeled: (N, 1, 28, 28).
    - per_class: images kept per class in each round (one round per entry).
    - epochs, transform, augment_group: training of each round (see train_classifier).
    - evaluate: (images, labels) to report the accuracy after each round, or None.

    Returns (the last round's classifier, one summary dict per round).
    """
    images, labels = labeled
    summaries = []
    for round_number, keep in enumerate(per_class):
        indices, pseudo, confidence = pseudo_label(teacher, unlabeled, keep)
        train_images = torch.cat([unlabeled[indices], images.repeat(labeled_repeats, 1, 1, 1)])
        train_labels = torch.cat([pseudo, labels.repeat(labeled_repeats)])
        torch.manual_seed(seed * 100 + round_number)
        student = Classifier(copy.deepcopy(pretrained))
        train_classifier(
            student,
            (train_images, train_labels),
            epochs=epochs,
            batch_size=256,
            transform=transform,
            augment_group=augment_group,
            seed=seed * 100 + round_number,
            desc=f"round {round_number + 1}/{len(per_class)}",
        )
        summary = {"round": round_number + 1, "pseudo_labels": len(indices)}
        summary["min_confidence"] = float(confidence.min())
        if evaluate is not None:
            summary["accuracy"] = accuracy(student, *evaluate)
        summaries.append(summary)
        teacher = student
    return teacher, summaries


def run_going_further(
    autoencoder: torch.nn.Module,
    final_model: Callable[[torch.Tensor], torch.Tensor],
    labeled: tuple[torch.Tensor, torch.Tensor],
    unlabeled: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int = 0,
) -> Classifier:
    """The notebook's going-further experiment: rounds of pseudo-labelling (``self_training``),
    the final model labelling first; prints the public test accuracy after each round.

    Inputs:
    - autoencoder: the pretrained autoencoder (its encoder starts every round; not changed).
    - final_model: the notebook's final classifier.
    - labeled: all labeled training images and labels; unlabeled: (N, 1, 28, 28).
    - test: (images, labels) to report accuracies on.

    Returns the last round's classifier.
    """
    self_trained, rounds = self_training(
        autoencoder.encoder,
        final_model,
        labeled,
        unlabeled,
        transform=digit_augmentation(),
        evaluate=test,
        seed=seed,
    )
    for summary in rounds:
        print(
            f"round {summary['round']}: {summary['pseudo_labels']:,} pseudo-labels, "
            f"public test accuracy {summary['accuracy']:.2f}"
        )
    return self_trained
