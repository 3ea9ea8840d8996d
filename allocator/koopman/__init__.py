"""Koopman operator pruning (paper 2): snapshots, exact DMD, and the KMP / KGP criteria (imports torch)."""

from allocator.koopman.criteria import KoopmanScores, koopman_scores, record_window
from allocator.koopman.dmd import DMD, exact_dmd
from allocator.koopman.snapshots import SnapshotStore

__all__ = ["DMD", "KoopmanScores", "SnapshotStore", "exact_dmd", "koopman_scores", "record_window"]
