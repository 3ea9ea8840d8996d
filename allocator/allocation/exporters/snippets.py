"""The code that applies each export to a PyTorch ``model`` in its tool, as printed by ``allocator export
--snippet`` and shown in the README. ``tests/interop`` runs these exact texts against the real tools (the first line
names the export file; the test points it at its own), then checks the model with ``allocator verify``.

JaxPruner and RigL are JAX / TensorFlow tools: their snippets build the map those tools match and were not run
here (neither installs from PyPI)."""

from __future__ import annotations

TORCH_PRUNE = '''\
export_path = "torch-prune.json"
import json
from torch.nn.utils import prune

document = json.load(open(export_path))
for module_name, entry in document["modules"].items():
    module = model.get_submodule(module_name)
    prune.l1_unstructured(module, **entry["kwargs"])  # amount: an int count of weights to prune
    prune.remove(module, entry["kwargs"]["name"])  # make it permanent: plain weights with zeros
'''

TORCH_AO = '''\
export_path = "torch-ao.json"
import json
from torch.ao.pruning import WeightNormSparsifier

document = json.load(open(export_path))
sparsifier = WeightNormSparsifier(sparse_block_shape=(1, 1), zeros_per_block=1,
                                  norm=lambda weight: weight.abs().flatten(1))  # flatten(1): conv kernels too
sparsifier.prepare(model, document["config"])
sparsifier.step()
for group in sparsifier.groups:  # the norm flattened conv kernels: give each mask its tensor's shape back
    parametrization = group["module"].parametrizations[group["tensor_name"]]
    parametrization[0].mask = parametrization[0].mask.reshape(parametrization.original.shape)
sparsifier.squash_mask()
'''

NNI = '''\
export_path = "nni.json"
import json
import torch
from nni.compression.pruning import LevelPruner

document = json.load(open(export_path))
pruner = LevelPruner(model, document["config_list"])
_, masks = pruner.compress()
pruner.unwrap_model()  # this restores the dense weights: multiply the masks in
with torch.no_grad():
    for module_name, module_masks in masks.items():
        for parameter_name, mask in module_masks.items():
            getattr(model.get_submodule(module_name), parameter_name).mul_(mask)
'''

LLM_COMPRESSOR = '''\
export_path = "llm-compressor.yaml"
from llmcompressor.core import LifecycleCallbacks, create_session

with create_session() as session:  # a plain nn.Module: one step of the session's lifecycle (oneshot() wants HF)
    session.initialize(model=model, recipe=export_path, start=0.0, steps_per_epoch=1)
    LifecycleCallbacks.batch_start()
    LifecycleCallbacks.optim_pre_step()
    LifecycleCallbacks.optim_post_step()
    LifecycleCallbacks.batch_end()
    session.finalize()
'''

SPARSEML_LEGACY = '''\
export_path = "sparseml-legacy.yaml"
from sparseml.pytorch.optim import ScheduledModifierManager

ScheduledModifierManager.from_yaml(export_path).apply(model)
'''

JAXPRUNER = '''\
export_path = "jaxpruner.json"
import json
import jaxpruner

document = json.load(open(export_path))
sparsity_map = {tuple(path.split("/")): s for path, s in document["custom_sparsity_map"].items()}
# keys are paths in flax.traverse_util.flatten_dict(params) (params = variables["params"]); name your flax modules
# as the torch ones (nn.Dense(..., name="fc1")) or edit the keys
sparsity_distribution = jaxpruner.sparsity_distributions.uniform
pruner = jaxpruner.MagnitudePruning(sparsity_distribution_fn=lambda params, sparsity=0.0: sparsity_distribution(
    params, sparsity, custom_sparsity_map=sparsity_map))
'''

RIGL = '''\
export_path = "rigl.json"
import json

# RigL (TF1) matches a key to the mask variable "<key>/mask:0"; pass this as its custom_sparsity_map
custom_sparsity_map = json.load(open(export_path))["custom_sparsity_map"]
'''

SNIPPETS: dict[str, str] = {
    "torch-prune": TORCH_PRUNE,
    "torch-ao": TORCH_AO,
    "nni": NNI,
    "llm-compressor": LLM_COMPRESSOR,
    "sparseml-legacy": SPARSEML_LEGACY,
    "jaxpruner": JAXPRUNER,
    "rigl": RIGL,
}


def snippet_for(kind: str, export_path: str | None = None) -> str:
    """The snippet of ``kind``, its first line pointed at ``export_path`` when given."""
    text = SNIPPETS[kind]
    if export_path is None:
        return text
    first, _, rest = text.partition("\n")
    return f"export_path = {export_path!r}\n{rest}"
