"""Code of the optional exercise 08 (dropout and batch norm from scratch, regularization lab).

- ``layers``: YOUR code, dropout / batch norm / layer norm forward and backward (NumPy);
- ``gradient_check``: numeric gradients and the relative error (given);
- ``checks``: what the notebook's graded cells run on your layers (given);
- ``normalization``, ``regularization``, ``augmentation``: the lab's experiments and plots (given);
- ``your_layers``: your NumPy layers as PyTorch modules, to train an MLP with them (given);
- ``data``: the MNIST training digits (given); ``submission``: the zip to hand in (given).
"""
