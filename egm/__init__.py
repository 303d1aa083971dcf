"""egm: energy-based and latent-variable generative models in JAX/Flax."""
