"""Benchmarks: `python -m riskpo_mm.bench.NAME` prints a short table with ratios measured in the same run."""
