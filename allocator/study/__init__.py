"""Studies on real data: validation runs (prune, fine-tune, compare), their cells, statistics, plots and sweeps."""
