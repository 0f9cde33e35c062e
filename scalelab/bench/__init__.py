"""Benchmarks: `throughput` (FFN speed-ups, train-step tokens/s and MFU; torch) and `fit` (fit speed;
torch-free). Import the submodule you need: this package imports neither, so `bench.fit` stays torch-free."""
