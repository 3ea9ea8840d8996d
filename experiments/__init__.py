"""Experiment and benchmark scripts, each run as ``python -m experiments.NAME`` from the repo root."""
