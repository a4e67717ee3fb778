"""Public sanity checks that the notebook runs on your code (given).

Each check builds small models or batches, runs your code and raises an AssertionError with a
sentence saying what is wrong. They check the same things as the graded cells, on other sizes:
passing them is a good sign, not a guarantee.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .networks import Autoencoder, Classifier, Decoder, Encoder
from .training import (
    autoencoder_train_step,
    autoencoder_val_step,
    classifier_train_step,
    classifier_val_step,
)

ALLOWED_LAYERS = (nn.Linear, nn.ReLU, nn.Sigmoid, nn.Sequential, nn.Flatten, nn.Unflatten)


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    """Random float32 images (n, 1, 28, 28) in [0, 1]."""
    return torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def labeled_patterns(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Easy labeled images: faint noise plus a bright band at rows 2*label to 2*label+4."""
    labels = torch.arange(n) % 10
    images = random_images(n, seed) * 0.3
    for image, label in zip(images, labels, strict=True):
        image[0, 2 * label : 2 * label + 4] = 1.0
    return images, labels


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters())


def linear_layer_sizes(model: nn.Module) -> list[tuple[int, int]]:
    """(in_features, out_features) of every nn.Linear, in the order they were created."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def assert_linear_only(model: nn.Module) -> None:
    """Only linear layers and simple activations: no convolutions in this exercise."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            raise AssertionError(
                f"{type(module).__name__} found: only nn.Linear layers are allowed."
            )


def check_encoder(latent_dim: int = 8, hidden_sizes: tuple[int, ...] = (64, 32)) -> None:
    """Encoder: output shape, the layer sizes of the docstring, linear only."""
    encoder = Encoder(latent_dim, hidden_sizes)
    assert_linear_only(encoder)
    expected = list(zip([784, *hidden_sizes], [*hidden_sizes, latent_dim], strict=True))
    assert linear_layer_sizes(encoder) == expected, (
        f"Encoder({latent_dim}, {hidden_sizes}) has linear layers {linear_layer_sizes(encoder)}, "
        f"expected {expected}."
    )
    relus = sum(isinstance(m, nn.ReLU) for m in encoder.modules())
    assert relus == len(hidden_sizes), (
        f"Encoder has {relus} ReLU layers, expected one after each hidden layer "
        f"({len(hidden_sizes)}), and none after the last layer."
    )
    last_linear = [m for m in encoder.modules() if isinstance(m, nn.Linear)][-1]
    last_outputs = []
    hook = last_linear.register_forward_hook(lambda module, x, out: last_outputs.append(out))
    z = encoder(random_images(5))
    hook.remove()
    assert z.shape == (5, latent_dim), (
        f"Encoder output has shape {tuple(z.shape)}, expected (5, {latent_dim})."
    )
    assert torch.equal(z, last_outputs[-1]), (
        "The latent code is not the output of the last linear layer: apply no activation "
        "(no ReLU) after it."
    )
    print(f"Encoder check passed: (5, 1, 28, 28) -> {tuple(z.shape)}, layers {expected}.")


def check_decoder(latent_dim: int = 8, hidden_sizes: tuple[int, ...] = (64, 32)) -> None:
    """Decoder: output shape and range, the mirrored layer sizes, linear only."""
    decoder = Decoder(latent_dim, hidden_sizes)
    assert_linear_only(decoder)
    sizes = [latent_dim, *reversed(hidden_sizes), 784]
    expected = list(zip(sizes[:-1], sizes[1:], strict=True))
    assert linear_layer_sizes(decoder) == expected, (
        f"Decoder({latent_dim}, {hidden_sizes}) has linear layers {linear_layer_sizes(decoder)}, "
        f"expected {expected}."
    )
    x_hat = decoder(torch.randn(5, latent_dim) * 10)
    assert x_hat.shape == (5, 1, 28, 28), (
        f"Decoder output has shape {tuple(x_hat.shape)}, expected (5, 1, 28, 28)."
    )
    assert x_hat.min() >= 0 and x_hat.max() <= 1, "Decoder outputs must lie in [0, 1] (Sigmoid)."
    print(f"Decoder check passed: (5, {latent_dim}) -> (5, 1, 28, 28), values in [0, 1].")


def check_autoencoder() -> None:
    """Autoencoder: forward equals decoder(encoder(x)) and gradients reach every parameter."""
    torch.manual_seed(0)
    model = Autoencoder(latent_dim=4, hidden_sizes=(16,))
    images = random_images(3)
    x_hat = model(images)
    expected = model.decoder(model.encoder(images))
    assert x_hat.shape == images.shape, f"Autoencoder output shape {tuple(x_hat.shape)} != input."
    assert torch.allclose(x_hat, expected), "Autoencoder.forward must return decoder(encoder(x))."
    F.mse_loss(x_hat, images).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"No gradient reaches {missing}: use every layer in forward."
    print("Autoencoder check passed: x_hat = decoder(encoder(x)), gradients reach all layers.")


def check_classifier() -> None:
    """Classifier: logits = Linear(encoder(x)), the encoder is used (not copied) and trained."""
    torch.manual_seed(0)
    encoder = Encoder(latent_dim=6, hidden_sizes=(16,))
    model = Classifier(encoder)
    assert_linear_only(model)
    assert model.encoder is encoder, "Classifier must keep the encoder it was given as .encoder."
    head_sizes = linear_layer_sizes(model.head)
    assert head_sizes == [(6, 10)], f"The head has linear layers {head_sizes}, expected [(6, 10)]."
    images = random_images(7)
    logits = model(images)
    assert logits.shape == (7, 10), f"Classifier output has shape {tuple(logits.shape)}."
    head = next(m for m in model.head.modules() if isinstance(m, nn.Linear))
    expected = F.linear(encoder(images), head.weight, head.bias)
    assert torch.allclose(logits, expected, atol=1e-5), (
        "Classifier.forward must return head(encoder(x)) with the head one linear layer and no "
        "activation in between (the latent code's negative values matter)."
    )
    logits.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters()), (
        "No gradient reaches the encoder: forward must run the images through self.encoder."
    )
    print("Classifier check passed: (7, 1, 28, 28) -> (7, 10), gradients reach the encoder.")


def check_autoencoder_steps(steps: int = 20) -> None:
    """The autoencoder steps: training lowers the loss, validation changes nothing."""
    torch.manual_seed(0)
    model = Autoencoder(latent_dim=4, hidden_sizes=(32,))
    images = random_images(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    before = autoencoder_val_step(model, images, "l2")
    expected = F.mse_loss(model(images), images).item()
    assert abs(before - expected) < 1e-6, (
        f"autoencoder_val_step returned {before:.5f}, expected the mean squared error "
        f"{expected:.5f}."
    )
    weights = copy.deepcopy(model.state_dict())
    autoencoder_val_step(model, images, "l1")
    unchanged = all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert unchanged, "autoencoder_val_step changed the weights."
    model.train()
    losses = [autoencoder_train_step(model, images, optimizer, "l2") for _ in range(steps)]
    assert isinstance(losses[0], float), "autoencoder_train_step must return loss.item()."
    assert losses[-1] < losses[0] * 0.9, (
        f"autoencoder_train_step did not lower the loss ({losses[0]:.4f} -> {losses[-1]:.4f}): "
        "call zero_grad, backward and step."
    )
    print(f"Autoencoder steps passed: training loss {losses[0]:.4f} -> {losses[-1]:.4f}.")


def check_classifier_steps(steps: int = 20) -> None:
    """The classifier steps: training lowers the loss, counts are right, validation is pure."""
    torch.manual_seed(0)
    model = Classifier(Encoder(latent_dim=8, hidden_sizes=(32,)))
    images, labels = labeled_patterns(20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    loss, correct = classifier_val_step(model, images, labels)
    logits = model(images)
    expected_loss = F.cross_entropy(logits, labels).item()
    expected_correct = int((logits.argmax(1) == labels).sum())
    assert abs(loss - expected_loss) < 1e-5, (
        f"classifier_val_step loss {loss:.4f} != cross-entropy {expected_loss:.4f}."
    )
    assert correct == expected_correct, f"classifier_val_step counted {correct} correct."
    model.train()
    history = [classifier_train_step(model, images, labels, optimizer) for _ in range(steps)]
    assert history[-1][0] < history[0][0] * 0.5, (
        f"classifier_train_step did not lower the loss ({history[0][0]:.3f} -> "
        f"{history[-1][0]:.3f}): call zero_grad, backward and step."
    )
    print(f"Classifier steps passed: training loss {history[0][0]:.3f} -> {history[-1][0]:.3f}.")
