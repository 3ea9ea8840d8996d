"""Counting the actual linear regions of a ReLU MLP on a 2-D slice of input space (numpy; the MIP uses pyomo)."""

from allocator.regions.geometry import Cell, Slice, enumerate_regions, make_slice, sampled_patterns

__all__ = ["Cell", "Slice", "enumerate_regions", "make_slice", "sampled_patterns"]
