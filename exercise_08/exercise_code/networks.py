"""The networks of exercise 08: encoder, decoder, autoencoder and classifier. Linear layers only.

An autoencoder learns without labels by reconstructing its input through a bottleneck:

    x (N, 1, 28, 28)  --encoder-->  z (N, latent_dim)  --decoder-->  x_hat (N, 1, 28, 28)

trained so that x_hat is close to x pixel by pixel. Because z is much smaller than the 784
pixels, the encoder must keep what matters about a digit. Transfer learning then reuses the
encoder in a classifier: z --head--> 10 logits, trained with the few labels there are.

Images reach every model as float32 in [0, 1], in training, saving and grading alike; a model
that wanted normalized inputs would have to normalize them itself. The encoder here takes the
pixels as they are: standardizing them, (x - 0.1307) / 0.3081, helped a classifier trained from
scratch a little but made the pretrained encoder transfer clearly worse when we measured it
(over 5 seeds, on 10,000 test images).

You implement the parts between the solution markers. Each part starts with the name it must
set (``self.layers = None``, ``z = None``, ...) and a comment saying what goes in it.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 28 * 28
NUM_CLASSES = 10


class Encoder(nn.Module):
    """Maps images to latent codes with a stack of linear layers.

    Architecture, for hidden_sizes (h_1, ..., h_k):

        flatten 784 -> Linear(784, h_1) -> ReLU -> ... -> Linear(h_{k-1}, h_k) -> ReLU
                    -> Linear(h_k, latent_dim)

    The last layer has no activation: the latent code may take any real value.

    Inputs to forward:
    - x: float32 images (N, 1, 28, 28) in [0, 1].

    Returns the latent codes z, shape (N, latent_dim).
    """

    def __init__(self, latent_dim: int = 32, hidden_sizes: tuple[int, ...] = (512, 128)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden_sizes = tuple(hidden_sizes)
        # self.layers: an nn.Sequential of nn.Linear and nn.ReLU modules as described above.
        self.layers = None
        ### BEGIN SOLUTION
        sizes = [NUM_PIXELS, *self.hidden_sizes]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], latent_dim))
        self.layers = nn.Sequential(*layers)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # z: the latent codes (N, latent_dim); flatten each image to 784 pixels, apply the layers.
        z = None
        ### BEGIN SOLUTION
        z = self.layers(x.flatten(start_dim=1))
        ### END SOLUTION
        return z


class Decoder(nn.Module):
    """Maps latent codes back to images: the encoder's layers in reverse order.

    Architecture, for hidden_sizes (h_1, ..., h_k) (the encoder's sizes):

        Linear(latent_dim, h_k) -> ReLU -> ... -> Linear(h_2, h_1) -> ReLU
        -> Linear(h_1, 784) -> Sigmoid -> reshape to (1, 28, 28)

    The sigmoid keeps every output pixel in [0, 1], like the input images.

    Inputs to forward:
    - z: latent codes (N, latent_dim).

    Returns reconstructed images x_hat, shape (N, 1, 28, 28), values in [0, 1].
    """

    def __init__(self, latent_dim: int = 32, hidden_sizes: tuple[int, ...] = (512, 128)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden_sizes = tuple(hidden_sizes)
        # self.layers: an nn.Sequential as described above, ending with nn.Sigmoid().
        self.layers = None
        ### BEGIN SOLUTION
        sizes = [latent_dim, *reversed(self.hidden_sizes)]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers += [nn.Linear(sizes[-1], NUM_PIXELS), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)
        ### END SOLUTION

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # x_hat: the images (N, 1, 28, 28); apply the layers, reshape their (N, 784) output.
        x_hat = None
        ### BEGIN SOLUTION
        x_hat = self.layers(z).unflatten(1, IMAGE_SHAPE)
        ### END SOLUTION
        return x_hat


class Autoencoder(nn.Module):
    """Encoder and decoder together: x_hat = decoder(encoder(x)).

    Inputs to forward:
    - x: float32 images (N, 1, 28, 28) in [0, 1].

    Returns the reconstructions x_hat, shape (N, 1, 28, 28), values in [0, 1].
    """

    def __init__(self, latent_dim: int = 32, hidden_sizes: tuple[int, ...] = (512, 128)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden_sizes = tuple(hidden_sizes)
        self.encoder = Encoder(latent_dim, hidden_sizes)
        self.decoder = Decoder(latent_dim, hidden_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x_hat: the reconstructions (N, 1, 28, 28), decoded from the encoder's latent codes.
        x_hat = None
        ### BEGIN SOLUTION
        x_hat = self.decoder(self.encoder(x))
        ### END SOLUTION
        return x_hat


class Classifier(nn.Module):
    """An encoder followed by a linear head that turns latent codes into class scores.

        logits = head(encoder(x)),   head = Linear(latent_dim, 10)

    Pass a pretrained encoder to transfer what the autoencoder learned, or a fresh
    ``Encoder()`` to train from scratch. The encoder is used as it is (not copied), so training
    the classifier changes the encoder you passed in.

    No activation between the encoder and the head: the latent code has none either, so its
    negative values carry as much of what the autoencoder learned as its positive ones. A ReLU
    here would throw that half away (measured over 5 seeds: about a point less after transfer).

    Inputs to forward:
    - x: float32 images (N, 1, 28, 28) in [0, 1].

    Returns the logits (unnormalized class scores), shape (N, 10).
    """

    def __init__(self, encoder: Encoder, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = encoder
        # self.head: one linear layer from the latent code (encoder.latent_dim) to the classes.
        self.head = None
        ### BEGIN SOLUTION
        self.head = nn.Linear(encoder.latent_dim, num_classes)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # logits: the head's raw output (N, 10) for the encoder's latent codes of x.
        logits = None
        ### BEGIN SOLUTION
        logits = self.head(self.encoder(x))
        ### END SOLUTION
        return logits
