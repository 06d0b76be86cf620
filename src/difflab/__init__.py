"""difflab: diffusion models on low-dimensional data."""
