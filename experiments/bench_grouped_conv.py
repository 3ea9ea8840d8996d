"""Would fine-tuning many CNN cells at once pay on this machine? Grouped convolutions against separate ones.

Run: ``.venv/bin/python -m experiments.bench_grouped_conv [--cells 8] [--repeats 5]``. For the conv shapes of the
small VGG-style net (28x28 grey input, batch 128, one torch thread), the forward and backward pass of ``--cells``
cells as one convolution with ``groups = cells`` against ``--cells`` separate convolutions; then LeNet-5 and the
small VGG trained ``--cells`` at a time through ``torch.func.vmap`` (stacked parameters) against one at a time.
Prints median seconds and the ratio separate / together (above 1: batching pays).
"""

from __future__ import annotations

import argparse
import copy
from typing import Sequence

import torch

from experiments.timing import median_seconds
from experiments.entry import positive_int


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cells = args.cells
    print(f"grouped convolution of {cells} cells vs {cells} separate convolutions (3x3, padding 1, batch 128)")
    for c_in, c_out, size in ((1, 16, 28), (16, 16, 28), (16, 32, 14), (32, 32, 14)):
        grouped = torch.nn.Conv2d(c_in * cells, c_out * cells, 3, padding=1, groups=cells)
        x = torch.randn(128, c_in * cells, size, size, requires_grad=True)
        separate = [torch.nn.Conv2d(c_in, c_out, 3, padding=1) for _ in range(cells)]
        xs = [torch.randn(128, c_in, size, size, requires_grad=True) for _ in range(cells)]
        together = median_seconds(lambda: grouped(x).sum().backward(), args.repeats)
        alone = median_seconds(lambda: [conv(xi).sum().backward() for conv, xi in zip(separate, xs)], args.repeats)
        print(f"   {c_in:>2}->{c_out:<2} on {size}x{size}: grouped {together * 1000:6.1f} ms, separate "
              f"{alone * 1000:6.1f} ms, separate/grouped {alone / together:.2f}x")

    from torch.func import functional_call, stack_module_state, vmap

    from allocator.models.convnets import LeNet5, VGGSmall

    print(f"one SGD step of {cells} cells, vmap over stacked parameters vs one model at a time (batch 128)")
    for factory in (LeNet5, VGGSmall):
        base = factory()
        models = [copy.deepcopy(base) for _ in range(cells)]
        x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
        optimisers = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]

        def one_at_a_time() -> None:
            for model, optimiser in zip(models, optimisers):
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimiser.step()

        params, buffers = stack_module_state(models)
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
        skeleton = copy.deepcopy(base).to("meta")
        loss = vmap(lambda p, b, xx, yy: torch.nn.functional.cross_entropy(functional_call(skeleton, (p, b), (xx,)), yy),
                    in_dims=(0, 0, None, None))
        optimiser = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9)

        def together_step() -> None:
            optimiser.zero_grad()
            loss(params, buffers, x, y).sum().backward()
            optimiser.step()

        alone = median_seconds(one_at_a_time, args.repeats)
        together = median_seconds(together_step, args.repeats)
        print(f"   {factory.__name__}: vmap {together * 1000:6.1f} ms, one at a time {alone * 1000:6.1f} ms, "
              f"one-at-a-time/vmap {alone / together:.2f}x")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
