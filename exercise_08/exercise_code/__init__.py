"""Code for exercise 08: autoencoder pretraining and transfer learning with 300 labels."""
