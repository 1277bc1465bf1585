"""Data layer: asl-signs reader, preprocessing, prepared cache, datasets and batching, synthetic data."""
