"""The rank of a pruned convolution's unrolled matrix ``T`` (conv.md), and the bounds around it.

For a fixed mask of kept kernel taps: actual rank <= **generic rank** (the maximum over all weight values on the
mask) <= structural rank of ``T``'s pattern <= the channel-cover bound <= ``min(rows, cols)``. Weights are shared
across positions, so the generic rank can sit below the structural rank (the fixture of conv.md: one channel, 3x3
'same' on 5x5, mask ``[[0,1,1],[1,0,0],[1,0,0]]``: structural 24, generic 22): the structural rank is not used.

- ``generic_rank``: exact, by elimination over the prime field ``Z / p`` (``p = 2^61 - 1``) with random non-zero
  values on the kept taps. An elimination over a field never over-counts the rank of the integer matrix and
  under-counts with probability at most ``rank / p`` (Schwartz-Zippel) per call. The matrix splits into connected
  components (rows and columns joined by entries), ranked one by one with FLINT's ``nmod_mat.rank``
  (python-flint); a component that is one tap's shifted identity needs no elimination (its rank is its entry
  count), and a cheap lower bound (``unit_lower_bound``) stops the work once the rank provably reaches the cap
  ``D`` or meets the cover bound.
- ``structural_rank``: maximum matching of ``T``'s pattern (scipy's Hopcroft-Karp).
- ``cover_bound``: the minimum-weight vertex cover of the channel graph (output channels weighted by their
  non-empty rows, polyphase input groups by their non-empty columns), by max-flow; always >= the generic rank.
"""

from __future__ import annotations

import functools

import numpy as np

from allocator.network.conv import ConvGeometry

#: The prime of the field the generic rank is computed in (a Mersenne prime, FLINT's word size).
PRIME = 2**61 - 1


@functools.lru_cache(maxsize=256)
def tap_pairs(geometry: ConvGeometry) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For every kernel offset ``(a, b)`` (row-major), the output positions and the input positions it joins
    (flat indices ``y W' + x`` and ``y_in W + x_in``) where the input lies on the grid."""
    (h_out, w_out), (h_in, w_in) = geometry.output_size, geometry.input_size
    (sh, sw), (ph, pw) = geometry.stride, geometry.padding
    y, x = np.meshgrid(np.arange(h_out), np.arange(w_out), indexing="ij")
    pairs = []
    for a in range(geometry.kernel[0]):
        for b in range(geometry.kernel[1]):
            yy, xx = y * sh - ph + a, x * sw - pw + b
            inside = (yy >= 0) & (yy < h_in) & (xx >= 0) & (xx < w_in)
            pairs.append(((y * w_out + x)[inside].ravel(), (yy * w_in + xx)[inside].ravel()))
    return tuple(pairs)


def entries(geometry: ConvGeometry, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices, column indices and tap indices (flat into the ``(c_out, c_in, kh, kw)`` tensor) of ``T``'s
    entries for the kept taps ``mask`` (boolean, that shape)."""
    mask = np.asarray(mask, dtype=bool).reshape(geometry.tensor_shape)
    pairs = tap_pairs(geometry)
    taps_per_pair = geometry.kernel[0] * geometry.kernel[1]
    positions_out = geometry.output_positions
    positions_in = geometry.input_size[0] * geometry.input_size[1]
    rows, cols, taps = [], [], []
    for flat in np.flatnonzero(mask):
        o, rest = divmod(int(flat), geometry.in_channels * taps_per_pair)
        i, offset = divmod(rest, taps_per_pair)
        out_positions, in_positions = pairs[offset]
        rows.append(o * positions_out + out_positions)
        cols.append(i * positions_in + in_positions)
        taps.append(np.full(out_positions.size, flat))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(taps)


def unrolled_matrix(geometry: ConvGeometry, kernel: np.ndarray) -> np.ndarray:
    """The dense unrolled matrix ``T`` of ``kernel`` (any dtype, shape ``(c_out, c_in, kh, kw)``): small shapes."""
    kernel = np.asarray(kernel)
    rows, cols, taps = entries(geometry, kernel != 0)
    matrix = np.zeros((geometry.rows, geometry.cols), dtype=kernel.dtype)
    matrix[rows, cols] = kernel.ravel()[taps]
    return matrix


def unit_lower_bound(geometry: ConvGeometry, mask: np.ndarray) -> int:
    """A lower bound on the generic rank by specialisation: keep one tap per output channel (the others set to
    zero), so every row of ``T`` is a unit vector or zero and the rank is the number of distinct columns hit; or one
    tap per input channel, so every column is a unit vector and the rank is the number of distinct rows hit. Taps
    are chosen greedily (most new columns / rows first). The generic rank never falls when taps are added, so the
    larger of the two is a lower bound."""
    mask = np.asarray(mask, dtype=bool).reshape(geometry.out_channels, geometry.in_channels, -1)
    pairs = tap_pairs(geometry)
    positions_out = geometry.output_positions
    positions_in = geometry.input_size[0] * geometry.input_size[1]
    best = 0
    for by_output in (True, False):
        covered = np.zeros(geometry.cols if by_output else geometry.rows, dtype=bool)
        channels = range(geometry.out_channels) if by_output else range(geometry.in_channels)
        for channel in channels:
            taps = np.argwhere(mask[channel] if by_output else mask[:, channel])
            gain, choice = 0, None
            for other, offset in taps:
                out_positions, in_positions = pairs[offset]
                hit = (other * positions_in + in_positions) if by_output else (other * positions_out + out_positions)
                new = int((~covered[hit]).sum())
                if new > gain:
                    gain, choice = new, hit
            if choice is not None:
                covered[choice] = True
        best = max(best, int(covered.sum()))
    return best


def peel_singletons(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """``(peeled, rows, cols, values)``: rank taken off by singleton elimination, and the entries of the core left.

    A row with one non-zero entry, at column ``c``, pivots: eliminating with it changes column ``c`` only (no
    fill), so ``rank A = 1 + rank(A without that row and column c)``; other rows whose only entry was in ``c``
    become zero. Likewise a column with one non-zero entry, by column operations. Repeated until neither is left;
    exact over any field."""
    peeled = 0
    while rows.size:
        row_count = np.bincount(rows)
        single_rows = row_count[rows] == 1
        if single_rows.any():
            pivot_cols = np.unique(cols[single_rows])
            peeled += pivot_cols.size
            keep = ~np.isin(cols, pivot_cols)
            rows, cols, values = rows[keep], cols[keep], values[keep]
            continue
        col_count = np.bincount(cols)
        single_cols = col_count[cols] == 1
        if not single_cols.any():
            break
        pivot_rows = np.unique(rows[single_cols])
        peeled += pivot_rows.size
        keep = ~np.isin(rows, pivot_rows)
        rows, cols, values = rows[keep], cols[keep], values[keep]
    return peeled, rows, cols, values


def _rank_mod_p(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> int:
    """Rank over ``Z / PRIME`` of the sparse matrix with these entries, by singleton elimination
    (``peel_singletons``) then FLINT's ``nmod_mat.rank`` on the core; the matrix is filled entry by entry
    (converting a dense array costs as much as the elimination)."""
    import flint

    peeled, rows, cols, values = peel_singletons(rows, cols, values)
    if rows.size == 0:
        return peeled
    rows = np.unique(rows, return_inverse=True)[1]
    cols = np.unique(cols, return_inverse=True)[1]
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    if n_rows > n_cols:  # FLINT's elimination is cheaper with fewer rows
        rows, cols, n_rows, n_cols = cols, rows, n_cols, n_rows
    matrix = flint.nmod_mat(n_rows, n_cols, PRIME)
    for i, j, value in zip(rows.tolist(), cols.tolist(), values.tolist()):
        matrix[i, j] = value
    return peeled + int(matrix.rank())


#: The largest component (rows x columns of its dense matrix) ``rank_upper`` eliminates; beyond it the component's
#: cover bound stands in (about 0.5 s of FLINT at this size on one core).
MAX_ELIMINATION_ENTRIES = 2_500_000
#: Small components are ranked together, as one block-diagonal matrix of at most this many dense entries.
BATCH_ENTRIES = 4_096


def generic_rank(geometry: ConvGeometry, mask: np.ndarray, *, cap: int | None = None,
                 rng: np.random.Generator | None = None, values: np.ndarray | None = None) -> int:
    """``min(generic rank of T on mask, cap)`` (module docstring); ``values`` (the kernel's taps mod ``PRIME``, all
    non-zero) default to random ones from ``rng``. Every component is eliminated, whatever its size."""
    return rank_upper(geometry, mask, cap=cap, rng=rng, values=values, max_entries=None)[0]


def rank_upper(geometry: ConvGeometry, mask: np.ndarray, *, cap: int | None = None,
               rng: np.random.Generator | None = None, values: np.ndarray | None = None,
               max_entries: int | None = MAX_ELIMINATION_ENTRIES, memo: dict | None = None) -> tuple[int, bool]:
    """``(r, used_cover)``: ``r = min(generic rank, cap)`` where every component needing elimination has at most
    ``max_entries`` dense entries after singleton elimination (``peel_singletons``); a larger one contributes
    ``min(rows, cols)`` of itself instead and the sum is capped by the channel cover (``used_cover`` is then true), so ``r`` is always ``>= min(generic rank, cap)``: the
    safe side for the region bound. ``memo`` (one dict per set of ``values``) keeps the rank of every component
    eliminated, keyed by its entries: a sweep over growing masks re-ranks only the components that new taps touched."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mask = np.asarray(mask, dtype=bool).reshape(geometry.tensor_shape)
    cap = min(geometry.rows, geometry.cols) if cap is None else int(cap)
    if cap <= 0 or not mask.any():
        return 0, False
    lower = unit_lower_bound(geometry, mask)
    if lower >= cap:
        return cap, False
    upper = cover_bound(geometry, mask)
    if upper == lower:
        return lower, False
    if values is None:
        rng = rng if rng is not None else np.random.default_rng()
        values = rng.integers(1, PRIME, size=mask.shape, dtype=np.int64)
    rows, cols, taps = entries(geometry, mask)
    used_rows, row_index = np.unique(rows, return_inverse=True)
    used_cols, col_index = np.unique(cols, return_inverse=True)
    n_r, n_c = used_rows.size, used_cols.size
    graph = coo_matrix((np.ones(rows.size), (row_index, n_r + col_index)), shape=(n_r + n_c, n_r + n_c))
    n_components, labels = connected_components(graph, directed=False)
    component_rows = np.bincount(labels[:n_r], minlength=n_components)
    component_cols = np.bincount(labels[n_r:], minlength=n_components)
    entry_label = labels[row_index]
    component_entries = np.bincount(entry_label, minlength=n_components)
    most = np.minimum(component_rows, component_cols)
    # One entry per row: rows are distinct unit vectors up to scale, rank = distinct columns; likewise per column.
    free = (component_entries == component_rows) | (component_entries == component_cols)
    total = int(most[free].sum())
    hard = np.flatnonzero(~free)
    if total >= cap or hard.size == 0:
        return min(total, cap, upper), False
    tap_values = np.asarray(values).reshape(-1)[taps]
    keep = np.isin(entry_label, hard)
    order = np.flatnonzero(keep)[np.argsort(entry_label[keep], kind="stable")]
    boundaries = np.flatnonzero(np.diff(entry_label[order])) + 1
    used_cover = False
    batch: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    batch_rows = batch_cols = 0

    def flush() -> int:
        nonlocal batch, batch_rows, batch_cols
        if not batch:
            return 0
        rank = _rank_mod_p(*(np.concatenate(parts) for parts in zip(*batch)))
        batch, batch_rows, batch_cols = [], 0, 0
        return rank

    for group in sorted(np.split(order, boundaries), key=lambda g: -int(most[entry_label[g[0]]])):
        if total >= cap:
            break
        label = entry_label[group[0]]
        size_r, size_c = int(component_rows[label]), int(component_cols[label])
        if max_entries is not None and size_r * size_c > max_entries:
            peeled, r_core, c_core, v_core = peel_singletons(row_index[group], col_index[group], tap_values[group])
            core_rows, core_cols = np.unique(r_core).size, np.unique(c_core).size
            if core_rows * core_cols > max_entries:
                total += int(most[label])  # min(rows, cols) of the component; the channel cover caps the sum below
                used_cover = True
            else:  # singleton elimination left a core small enough to eliminate exactly
                total += peeled + (_rank_mod_p(r_core, c_core, v_core) if r_core.size else 0)
            continue
        component_key = None
        if memo is not None:  # the component's entries (row, column, tap): its matrix under these values
            ordered = group[np.lexsort((cols[group], rows[group]))]
            component_key = np.stack((rows[ordered], cols[ordered], taps[ordered])).tobytes()
        if component_key is not None and component_key in memo:
            total += memo[component_key]
            continue
        if size_r * size_c > BATCH_ENTRIES:
            rank = _rank_mod_p(np.unique(row_index[group], return_inverse=True)[1],
                               np.unique(col_index[group], return_inverse=True)[1], tap_values[group])
            if memo is not None:
                memo[component_key] = rank
            total += rank
            continue
        if (batch_rows + size_r) * (batch_cols + size_c) > BATCH_ENTRIES:
            total += flush()
        r_compact = np.unique(row_index[group], return_inverse=True)[1] + batch_rows
        c_compact = np.unique(col_index[group], return_inverse=True)[1] + batch_cols
        batch.append((r_compact, c_compact, tap_values[group]))  # small components share one block-diagonal matrix
        batch_rows, batch_cols = batch_rows + size_r, batch_cols + size_c
    total += flush()
    return min(total, cap, upper), used_cover


def structural_rank(geometry: ConvGeometry, mask: np.ndarray) -> int:
    """Maximum matching of ``T``'s pattern on ``mask``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rows, cols, _ = entries(geometry, mask)
    if rows.size == 0:
        return 0
    pattern = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(geometry.rows, geometry.cols))
    return int((maximum_bipartite_matching(pattern, perm_type="column") >= 0).sum())


def cover_bound(geometry: ConvGeometry, mask: np.ndarray) -> int:
    """``min over covers (A, B) of sum_{o in A} rows(o) + sum_{g in B} cols(g)``: output channels ``o`` and
    polyphase input groups ``g = (i, y_in mod s_h, x_in mod s_w)`` such that every entry of ``T`` lies in a row of
    ``A`` or a column of ``B`` (so ``rank T <= rank T_A + rank T_B``); by max-flow on the channel graph."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    rows, cols, _ = entries(geometry, mask)
    if rows.size == 0:
        return 0
    positions_out = geometry.output_positions
    h_in, w_in = geometry.input_size
    sh, sw = geometry.stride
    out_channel = rows // positions_out
    in_channel, in_position = np.divmod(cols, h_in * w_in)
    phase = ((in_position // w_in) % sh) * sw + (in_position % w_in) % sw
    group = in_channel * sh * sw + phase
    n_out, n_group = geometry.out_channels, geometry.in_channels * sh * sw
    row_weight = np.bincount(out_channel[np.unique(rows, return_index=True)[1]], minlength=n_out)
    col_weight = np.bincount(group[np.unique(cols, return_index=True)[1]], minlength=n_group)
    source, sink = 0, 1 + n_out + n_group
    edges = {(o, g) for o, g in zip(out_channel.tolist(), group.tolist())}
    infinite = int(geometry.rows + geometry.cols + 1)
    tail = [source] * n_out + [1 + o for o, _ in edges] + [1 + n_out + g for g in range(n_group)]
    head = [1 + o for o in range(n_out)] + [1 + n_out + g for _, g in edges] + [sink] * n_group
    capacity = list(row_weight) + [infinite] * len(edges) + list(col_weight)
    graph = csr_matrix((np.array(capacity, dtype=np.int32), (tail, head)), shape=(sink + 1, sink + 1))
    return int(maximum_flow(graph, source, sink).flow_value)
