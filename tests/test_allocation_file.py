import json

import pytest

from allocator import InvalidInputError, Network
from allocator.allocation import Constraints, allocate
from allocator.allocation.file import content_hash, dumps, from_document, load, save, to_document
from allocator.counts import kept_from_density

pytestmark = pytest.mark.solver


@pytest.fixture(scope="module")
def allocation():
    network = Network.from_arch("300,60,40,30,10")
    constraints = Constraints(min_density={"fc1.weight": 0.001}, tied=[["fc2.weight", "fc3.weight"]])
    return allocate(network, density=0.01, constraints=constraints)


def test_round_trip_is_lossless(allocation, tmp_path):
    path = save(allocation, tmp_path / "alloc.json")
    loaded = load(path)
    assert to_document(loaded) == to_document(allocation)
    assert loaded.kept == allocation.kept
    assert loaded.layers == allocation.layers
    assert loaded.network == allocation.network
    assert loaded.constraints.tied == (("fc2.weight", "fc3.weight"),)


def test_document_contents(allocation):
    document = json.loads(dumps(allocation))
    layer = document["layers"]["fc1.weight"]
    assert layer["kept"] == allocation.layers[0].kept
    assert layer["density"] == layer["kept"] / layer["weights"]
    assert document["budget"]["kept_total"] <= document["budget"]["kept"]
    assert document["objective"]["rank_model"] == "binomial"
    assert document["objective"]["include_output_layer"] is True
    assert document["solver"]["mip"]["status"] == "optimal"
    budget_density = document["budget"]["kept"] / document["budget"]["prunable_weights"]
    assert document["baselines"]["uniform"]["kept"]["fc1.weight"] == kept_from_density(budget_density, 18000)
    assert document["content_hash"].startswith("sha256:")
    # The hash covers the decision, not timings: changing a time leaves it, changing a count breaks it.
    document["solver"]["solve_seconds"] = 123.0
    assert content_hash(document) == document["content_hash"]
    from_document(document)


def test_edited_file_is_refused(allocation, tmp_path):
    document = to_document(allocation)
    document["layers"]["fc1.weight"]["kept"] += 1
    with pytest.raises(InvalidInputError, match="content hash .* does not match"):
        from_document(document)
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="is not JSON"):
        load(path)
    with pytest.raises(InvalidInputError, match="cannot be read"):
        load(tmp_path / "missing.json")
    other = to_document(allocation)
    other["version"] = 99
    with pytest.raises(InvalidInputError, match="version 99 is not supported"):
        from_document(other)


def test_malformed_files_are_refused_with_a_clear_error(allocation, tmp_path):
    for text, fragment in [("[]", "expected a JSON object, got list"), ('"x"', "expected a JSON object"),
                           ('{"format": "layerwise-allocation"}', "has no 'version'")]:
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(InvalidInputError, match=fragment):
            load(path)
    document = to_document(allocation)
    document["budget"]["kept_total"] = 10**6  # inconsistent with the layers, hash recomputed
    document["content_hash"] = content_hash(document)
    with pytest.raises(InvalidInputError, match="kept_total"):
        from_document(document)
    document = to_document(allocation)
    document["layers"]["fc2.weight"]["sparsity"] = 0.5
    document["content_hash"] = content_hash(document)
    with pytest.raises(InvalidInputError, match="disagree"):
        from_document(document)
