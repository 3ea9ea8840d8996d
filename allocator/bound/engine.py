"""``expected_bound``: the expected linear-region bound ``E[B]`` of a network at given per-layer densities."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Sequence

from allocator.bound.rank import RankLaw, RankModel, as_fraction
from allocator.bound.exact import expected_bound_scaled, ln_of_ratio
from allocator.bound.program import expected_bound_of_program_exact, ln_expected_bound_of_program
from allocator.bound.recursion import ln_expected_bound_from_laws
from allocator.bound.uncertainty import ln_bound_standard_error
from allocator.errors import InvalidInputError
from allocator.network import Network

LN_2 = math.log(2.0)
LN_10 = math.log(10.0)


@dataclass(frozen=True)
class LayerReport:
    """One weight layer as the bound saw it."""

    name: str
    rows: int
    cols: int
    weights: int
    density: float
    expected_kept: float
    in_bound: bool
    expected_rank: float | None


@dataclass(frozen=True)
class BoundResult:
    """The expected bound and every convention it was computed under.

    Attributes:
        ln_bound: ``ln E[B]`` in nats (``-inf`` when ``E[B] = 0``, possible only with ``paper_p0``).
        log2_bound: ``log2 E[B]``.
        exact_value: ``E[B]`` as a Fraction in exact mode, else ``None``.
        structural_samples: masks sampled per layer by the structural model, else ``None``.
        standard_error_nats: the structural estimate's Monte-Carlo standard error of ``ln E[B]``
            (``allocator.bound.uncertainty``; a lower bound of the noise at densities of 0.001 and below), else
            ``None``.
    """

    ln_bound: float
    log2_bound: float
    exact_value: Fraction | None
    rank_model: str
    rank_model_options: dict[str, object]
    include_output_layer: bool
    input_width: int
    widths: tuple[int, ...]
    densities: tuple[float, ...]
    layers: tuple[LayerReport, ...]
    structural_samples: int | None
    standard_error_nats: float | None = None
    bound_convention: str = "chain"

    def scientific(self, digits: int = 3) -> str:
        """``E[B]`` in scientific notation from its natural log, e.g. ``'1.07e+52'``."""
        if self.ln_bound == -math.inf:
            return "0"
        log10 = self.ln_bound / LN_10
        exponent = math.floor(log10)
        mantissa = 10 ** (log10 - exponent)
        if round(mantissa, digits - 1) >= 10.0:
            mantissa, exponent = mantissa / 10.0, exponent + 1
        return f"{mantissa:.{digits - 1}f}e{exponent:+03d}"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: the exact value as ``numerator/denominator`` while both have at most
        ``EXACT_STRING_DIGITS`` digits, else ``null`` beside ``exact_value_decimal``, its first 40 significant digits
        (exact, not rounded through a float)."""
        document = asdict(self)
        exact = self.exact_value
        document["exact_value"] = None
        if exact is not None:
            short = max(exact.numerator.bit_length(), exact.denominator.bit_length()) * 0.30103 < EXACT_STRING_DIGITS
            document["exact_value"] = str(exact) if short else None
            document["exact_value_decimal"] = decimal_digits(exact.numerator, exact.denominator, 40)
        document["bound_scientific"] = self.scientific()
        document["ln_bound_unit"] = "nats"
        return document


EXACT_STRING_DIGITS = 4000


def decimal_digits(numerator: int, denominator: int, digits: int) -> str:
    """``numerator / denominator`` in scientific notation with ``digits`` significant digits, truncated (exact
    integer arithmetic), e.g. ``'1.0730...e+52'``.

    Example:
        >>> decimal_digits(1, 3, 5)
        '3.3333e-01'
    """
    if numerator <= 0:
        return "0"
    exponent = math.floor(ln_of_ratio(numerator, denominator) / LN_10)  # exact to +-1, fixed below
    scale = digits - 1 - exponent
    value = numerator * 10**scale // denominator if scale >= 0 else numerator // (denominator * 10**-scale)
    while value >= 10**digits:  # the estimate of the exponent was one too small
        exponent, value = exponent + 1, value // 10
    while value < 10 ** (digits - 1):
        exponent -= 1
        scale += 1
        value = numerator * 10**scale // denominator if scale >= 0 else numerator // (denominator * 10**-scale)
    text = str(value)
    return f"{text[0]}.{text[1:]}e{exponent:+03d}"


def _rank_laws(
    network: Network, densities: Sequence[float | Fraction], model: RankModel, exact: bool
) -> list[RankLaw]:
    specs, caps = network.layers, network.rank_caps
    return [model.law_for(specs[layer], densities[layer], exact=exact, cap=caps[layer]) for layer in network.bound_layers]


def _ln_of_laws(network: Network, laws: Sequence[RankLaw]) -> float:
    """``ln E[B]`` from the bound layers' laws: the chain recursion, or the program's steps."""
    if network.is_chain:
        widths = [network.widths[i] for i in network.bound_layers]
        return ln_expected_bound_from_laws(network.input_width, widths, [law.ln_pmf for law in laws])
    by_layer = dict(zip(network.bound_layers, laws))
    return ln_expected_bound_of_program(network.input_width, network.bound_program, network.domains,
                                        lambda layer: by_layer[layer].ln_pmf)


#: The most terms ``expected_bound(..., exact=True)`` writes out for a program (``sum_s D_s K_s n_s``).
EXACT_PROGRAM_MAX_TERMS = 20_000_000


def check_exact_program(network: Network) -> None:
    """Refuse exact mode on a program with more than ``EXACT_PROGRAM_MAX_TERMS`` terms (naming the count)."""
    terms = sum(network.domains[s] * min(network.domains[s], getattr(step, "width", 1)) * getattr(step, "width", 1)
                for s, step in enumerate(network.bound_program))
    if terms > EXACT_PROGRAM_MAX_TERMS:
        raise InvalidInputError(f"exact mode writes every term of this network's bound program out (about {terms:.3g} "
                                f"terms, at most {EXACT_PROGRAM_MAX_TERMS:.0e} accepted): use the float path, whose "
                                f"agreement with the exact program the tests check on small programs")


def ln_expected_bound(
    network: Network, densities: Sequence[float], rank_model: RankModel | str = "binomial"
) -> float:
    """``ln E[B]`` (nats) for one density per weight layer; the fast path the solver calls repeatedly.

    Example:
        >>> net = Network.from_arch("784,100,100,10")
        >>> round(ln_expected_bound(net, [0.001, 0.001, 1.0]), 2)
        119.8
    """
    model = RankModel(rank_model) if isinstance(rank_model, str) else rank_model
    values = network.check_densities(densities)
    return at_least_one_region(_ln_of_laws(network, _rank_laws(network, values, model, exact=False)), model)


def expected_bound(
    network: Network,
    densities: Sequence[float | Fraction],
    rank_model: RankModel | str = "binomial",
    *,
    exact: bool = False,
) -> BoundResult:
    """``E[B]`` of ``network`` with weight layer ``l`` kept at density ``densities[l]``.

    ``E[B] = N(1, n0)`` by the recursion of ``allocator.bound.recursion``. With ``exact=True`` it is also
    computed in rational arithmetic (densities taken as the decimals they print as) and ``ln_bound`` is
    the log of that exact value; otherwise float64 log space.

    Raises:
        InvalidInputError: a density outside [0, 1], a wrong count of densities, an unknown rank model.
    """
    model = RankModel(rank_model) if isinstance(rank_model, str) else rank_model
    values = network.check_densities([float(d) for d in densities])
    if exact and not network.is_chain:
        check_exact_program(network)
    exact_densities: Sequence[float | Fraction] = list(densities) if exact else values
    laws = _rank_laws(network, exact_densities, model, exact)
    widths = tuple(network.widths[i] for i in network.bound_layers)
    exact_value: Fraction | None = None
    if exact and not network.is_chain:
        by_layer = dict(zip(network.bound_layers, laws))
        exact_value = expected_bound_of_program_exact(network.input_width, network.bound_program, network.domains,
                                                      lambda layer: by_layer[layer].fractions())  # type: ignore
        ln_bound = ln_of_ratio(exact_value.numerator, exact_value.denominator) if exact_value > 0 else -math.inf
    elif exact:
        scaled = [law.scaled() for law in laws]
        if any(p is None for p in scaled):  # pragma: no cover - every builder honours exact
            raise InvalidInputError(f"rank model {model.name!r} gave no exact law")
        numerator, denominator = expected_bound_scaled(network.input_width, widths, scaled)  # type: ignore[arg-type]
        exact_value = Fraction(numerator, denominator)
        ln_bound = ln_of_ratio(numerator, denominator) if numerator > 0 else -math.inf
    else:
        ln_bound = at_least_one_region(_ln_of_laws(network, laws), model)
    law_by_layer = dict(zip(network.bound_layers, laws))
    layers = tuple(
        LayerReport(
            name=name,
            rows=rows,
            cols=cols,
            weights=rows * cols,
            density=density,
            expected_kept=density * rows * cols,
            in_bound=index in law_by_layer,
            expected_rank=law_by_layer[index].mean() if index in law_by_layer else None,
        )
        for index, (name, (rows, cols), density) in enumerate(zip(network.names, network.shapes, values))
    )
    samples = laws[0].samples if model.name == "structural" else None
    return BoundResult(
        ln_bound=ln_bound,
        log2_bound=ln_bound / LN_2,
        exact_value=exact_value,
        rank_model=model.name,
        rank_model_options=model.options(),
        include_output_layer=network.include_output_layer,
        input_width=network.input_width,
        widths=network.widths,
        densities=values,
        layers=layers,
        structural_samples=samples,
        standard_error_nats=None if exact else ln_bound_standard_error(network, values, model),
        bound_convention=bound_convention(network),
    )


def bound_convention(network: Network) -> str:
    """How the bound saw the network, for every output: the plain chain, or a program with convs inside."""
    if network.is_chain:
        return ("linear chain, n0 = " + str(network.input_width)
                + (" (convolutions frozen, n0 = their flattened output: paper 1's convention)" if any(network.kernels)
                   else ""))
    kinds = sorted({type(step).__name__ for step in network.bound_program})
    convs = sum(1 for spec in network.layers if spec.conv is not None)
    return (f"program of {len(network.bound_program)} steps ({', '.join(kinds)}), {convs} convolutions inside the "
            f"bound, n0 = {network.input_width}")


ROUNDING_NATS = 1e-12


def at_least_one_region(ln_bound: float, model: RankModel) -> float:
    """``ln_bound``, with the float path's rounding around ``E[B] = 1`` removed: every rank configuration leaves at
    least one region, so ``E[B] >= 1`` when the rank laws are probability laws, and a value within
    ``ROUNDING_NATS`` of 0 (an empty first layer gives ``-5e-14`` or ``1e-15``) is the exact 0. Under ``paper_p0``
    the laws lose mass and ``E[B] < 1`` is possible: the value is left as it is."""
    if model.paper_p0:
        return ln_bound
    return 0.0 if ln_bound < ROUNDING_NATS else ln_bound


#: ``estimate_exact_seconds``'s constant, seconds per unit of work: calibrated on 784-100-100-10 at density 0.001.
_EXACT_SECONDS_PER_UNIT = 0.94 / 2.95e7


def estimate_exact_seconds(network: Network, densities: Sequence[float]) -> float:
    """About how long ``expected_bound(..., exact=True)`` takes, in seconds, before running it.

    The exact recursion (``allocator.bound.exact``) does ``O(m_l)`` multiplications per layer of integers as large
    as the common denominators of the layers from ``l`` on; layer ``i``'s denominator has about
    ``T_i * other_i * D_i`` decimal digits (``T = min(rows, cols)``, ``other = max(rows, cols)``, ``D`` the decimal
    places of its density). So ``t = c * sum_l m_l * sum_{i >= l} T_i other_i D_i``. Measured (GMP integers):
    784-100-100-10 at 0.001 0.94 s (the calibration), 784-200-200-10 4.7 s (4.5 estimated), 784-400-400-10
    28.7 s (24), 784-300-100-10 at 0.01 4.5 s (5.3), 200-100-100-10 at 0.1 0.03 s (0.13).
    """
    widths = (network.input_width,) + network.widths
    layers = list(network.bound_layers)
    sizes = []
    for l in layers:
        rows, cols = widths[l + 1], widths[l]
        places = max(0, len(str(as_fraction(densities[l]).denominator)) - 1)  # 0.001 -> 3, 1 -> 0
        sizes.append(min(rows, cols) * max(rows, cols) * places)
    work = sum(min(widths[l], widths[l + 1]) * sum(sizes[position:]) for position, l in enumerate(layers))
    return _EXACT_SECONDS_PER_UNIT * work
