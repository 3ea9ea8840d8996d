"""Training and fine-tuning engines: the reference loop, the sparse twin, and many cells batched as one chain."""
