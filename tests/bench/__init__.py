"""Benchmarks, run by `make bench` (python -m tests.bench [SECTION ...]).

Each section is a module here with a `main() -> None` that prints its own figures. Figures are ratios
against a baseline measured in the same run, never absolute thresholds.
"""
