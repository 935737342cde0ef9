"""Benchmarks of the input pipeline and the model."""
