"""The framework-neutral description of a ReLU network that the bound and the solver work on.

- ``spec``: ``Network`` (widths, names, prunability, conventions) and ``LayerSpec`` (one weight layer).
- ``conv``: ``ConvGeometry``, the shape of one 2-D convolution (channels, kernel, grid, stride, padding).
- ``program``: the bound's typed steps (ReLU layer, ReLU + max-pool, cap, residual block) for networks that are not a
  plain chain of layers.
"""

from allocator.network.conv import ConvGeometry
from allocator.network.program import Cap, Relu, ReluMaxPool, Residual, Step, program_domains
from allocator.network.spec import LAYER_KINDS, MAX_WIDTH, LayerSpec, Network
from allocator.network.builder import ProgramBuilder

__all__ = ["Cap", "ConvGeometry", "LAYER_KINDS", "LayerSpec", "MAX_WIDTH", "Network", "ProgramBuilder", "Relu", "ReluMaxPool",
           "Residual", "Step", "program_domains"]
