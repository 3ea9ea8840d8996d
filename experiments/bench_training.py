"""Benchmark: training speed of MLP 2x100 on the 60k Fashion-MNIST training images, one core.

Run: ``.venv/bin/python -m experiments.bench_training [--repeats N]``. Prints medians of:
- one epoch of ``allocator.pruning.train`` (in-memory tensors, index batches) against a plain
  ``torch.utils.data.DataLoader`` loop over the same tensors with the same model and optimiser (ratio);
- one fine-tuning epoch of the model pruned to density 0.001 (masks through torch.nn.utils.prune) against
  the same epoch unmasked (ratio: the masking overhead);
and the resulting estimate for paper 1's protocol on one network and one density (10 seeds, 15 dense + 15
fine-tuning epochs per allocation, two allocations).
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from allocator.allocation import allocate  # noqa: E402
from allocator.data import load_dataset  # noqa: E402
from allocator.models import get_model  # noqa: E402
from allocator.pruning import Tensors, TrainConfig, prune_to_counts, scores, set_threads, train  # noqa: E402
from experiments.timing import median_seconds  # noqa: E402
from experiments.entry import positive_int  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args(argv)
    set_threads(1)
    data = Tensors.from_dataset(load_dataset("fashion-mnist"))
    entry = get_model("mlp-2x100")
    # train() also evaluates the 5k validation split each epoch; the plain loop gets the same evaluation.
    config = TrainConfig(epochs=1, select_on="last")

    def ours() -> None:
        torch.manual_seed(0)
        train(entry.build(), data, config, seed=0)

    def plain_dataloader() -> None:
        torch.manual_seed(0)
        model = entry.build()
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train_x, data.train_y),
                                             batch_size=128, shuffle=True)
        model.train()
        for x, y in loader:
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            model(data.val_x).argmax(1)

    allocation = allocate(entry.network, density=0.001, baselines=())
    kept = {layer.name: layer.kept for layer in allocation.layers if layer.prunable}

    def masked() -> None:
        torch.manual_seed(0)
        model = entry.build()
        prune_to_counts(model, scores("magnitude", model, list(kept)), kept)
        train(model, data, config, seed=0)

    epoch_ours = median_seconds(ours, args.repeats)
    epoch_plain = median_seconds(plain_dataloader, args.repeats)
    epoch_masked = median_seconds(masked, args.repeats)
    print(f"MLP 2x100, 55,000 training images per epoch (5,000 held out for validation), batch 128, one thread; "
          f"median of {args.repeats}")
    print(f"  allocator.pruning.train, one epoch        {epoch_ours:7.3f} s")
    print(f"  plain DataLoader loop, one epoch          {epoch_plain:7.3f} s   ratio ours/plain {epoch_ours / epoch_plain:.2f}")
    print(f"  masked fine-tuning epoch (density 0.001)  {epoch_masked:7.3f} s   ratio masked/unmasked "
          f"{epoch_masked / epoch_ours:.2f}")
    protocol = 10 * 15 * epoch_ours + 2 * 10 * 15 * epoch_masked
    print(f"  paper-1 protocol estimate (10 seeds x (15 dense + 2 x 15 fine-tuning epochs)): {protocol / 60:.1f} min "
          f"of epochs (evaluation of the test split per cell not included)")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
