import pytest

from allocator import InvalidInputError, Network


pytestmark = pytest.mark.pure


def test_from_arch_shapes_and_defaults():
    net = Network.from_arch("784,100,100,10")
    assert net.input_width == 784
    assert net.widths == (100, 100, 10)
    assert net.shapes == ((100, 784), (100, 100), (10, 100))
    assert net.weights == (78400, 10000, 1000)
    assert net.prunable == (True, True, False)
    assert net.prunable_weights == 88400
    assert net.names == ("fc1.weight", "fc2.weight", "fc3.weight")
    assert net.bound_layers == (0, 1, 2)
    assert Network.from_arch("784,100,100,10", include_output_layer=False).bound_layers == (0, 1)


@pytest.mark.parametrize(
    "arch, fragment",
    [
        ("784,0,10", "width of weight layer 1 is 0"),
        ("784,x,10", "'x'"),
        ("784", "1 entry"),
        ("-3,4", "input width n0 is -3"),
    ],
)
def test_bad_arch_names_the_value(arch, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(")):
        Network.from_arch(arch)


def test_bad_densities_name_layer_and_value():
    net = Network.from_arch("784,100,10")
    with pytest.raises(InvalidInputError, match="density of fc2.weight is 1.5"):
        net.check_densities([0.1, 1.5])
    with pytest.raises(InvalidInputError, match="3 densities given for 2 weight layers"):
        net.check_densities([0.1, 0.1, 0.1])
    with pytest.raises(InvalidInputError, match="nan"):
        net.check_densities([float("nan"), 1.0])
    # The invalid-input error is also a ValueError for callers that catch builtins.
    with pytest.raises(ValueError):
        net.check_densities([-0.1, 1.0])


def test_single_density_expands_to_prunable_layers():
    net = Network.from_arch("784,100,100,10")
    assert net.expand_densities([0.01]) == (0.01, 0.01, 1.0)
    assert net.expand_densities([0.01, 0.02, 0.5]) == (0.01, 0.02, 0.5)


def test_names_and_flags_are_checked():
    with pytest.raises(InvalidInputError, match="unique"):
        Network(4, (3, 2), names=("a", "a"))
    with pytest.raises(InvalidInputError, match="1 prunable flags given for 2"):
        Network(4, (3, 2), prunable=(True,))
    with pytest.raises(InvalidInputError, match="no layer in the bound"):
        Network(4, (3,), include_output_layer=False)
