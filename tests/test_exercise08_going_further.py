"""Section 10's virtual adversarial training, on a small network and random images (seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exercise_08.exercise_code import going_further, submission  # noqa: E402


def small_model(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return going_further.batch_norm_mlp((32, 16))


def test_random_shift_moves_each_image_by_whole_pixels_within_the_limit() -> None:
    images = torch.zeros(50, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0  # one bright pixel in the middle of each image
    shifted = going_further.random_shift(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    where = shifted[:, 0].flatten(1).argmax(1)
    rows, columns = where // 28, where % 28
    assert shifted.sum((1, 2, 3)).eq(1).all(), "every pixel moves, none is blended"
    assert (rows - 14).abs().le(2).all() and (columns - 14).abs().le(2).all()
    assert len(set(zip(rows.tolist(), columns.tolist(), strict=True))) > 10, "shifts differ"


def test_the_adversarial_direction_changes_the_prediction_more_than_a_random_one() -> None:
    model = small_model()
    images = torch.rand(64, 1, 28, 28)
    logits = model(images)
    adversarial = going_further.virtual_adversarial_loss(
        model, images, logits, eps=2.0, generator=torch.Generator().manual_seed(1)
    )
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    random_direction = 2.0 * noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        random = going_further.kl_divergence(logits, model(images + random_direction))
    assert adversarial.requires_grad
    assert adversarial.item() > 2 * random.item() > 0


def test_perturbed_batches_leave_batch_norm_running_statistics_alone() -> None:
    model = small_model()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]

    def statistics() -> list[torch.Tensor]:
        return [s.clone() for m in norms for s in (m.running_mean, m.running_var)]

    model(torch.rand(16, 1, 28, 28))
    before = statistics()
    with going_further.frozen_batch_norm_statistics(model):
        model(torch.rand(16, 1, 28, 28) + 5)
    assert all(torch.equal(a, b) for a, b in zip(before, statistics(), strict=True))
    model(torch.rand(16, 1, 28, 28) + 5)
    assert not torch.equal(before[0], statistics()[0]), "the momentum is back afterwards"


def test_training_lowers_the_labeled_loss_and_the_model_follows_the_hand_in_rules(
    tmp_path: Path,
) -> None:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(10, 1, 4, 4, generator=generator)  # one smooth "digit" per class,
    prototypes = torch.nn.functional.interpolate(coarse, size=28, mode="bilinear")  # shiftable

    def draw(classes: torch.Tensor) -> torch.Tensor:
        noise = 0.3 * torch.rand(len(classes), 1, 28, 28, generator=generator)
        return (prototypes[classes] + noise).clamp(0, 1)

    labels = torch.arange(20) % 10
    labeled = (draw(labels), labels)
    unlabeled = draw(torch.randint(10, (200,), generator=generator))
    model = small_model()
    log = going_further.train_vat(
        model,
        labeled,
        unlabeled,
        steps=60,
        unlabeled_batch_size=32,
        evaluate=labeled,
        evaluate_every=20,
    )
    assert [entry["step"] for entry in log] == [20, 40, 60]
    assert log[-1]["ce"] < log[0]["ce"]
    assert log[-1]["accuracy"] > 0.5
    path = submission.save_model(model.eval(), tmp_path / "classifier.pt2")  # raises if not
    assert path.is_file()
