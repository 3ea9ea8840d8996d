#!/usr/bin/env bash
# CLI outputs of one checkout, for comparing two versions (the architecture refactor was checked this way, in a
# clone whose .venv `make setup` built; the editable install follows the checked-out tree):
#   cp -r experiments/refactor_check /tmp/check
#   git checkout b9c00bf && /tmp/check/snapshot.sh "$PWD" /tmp/before
#   git checkout 4f1328a && /tmp/check/snapshot.sh "$PWD" /tmp/after
#   git checkout main && python3 /tmp/check/compare.py /tmp/before /tmp/after
# bound (5 cases), solve --json (6 networks, constraints included), the demo's solve with every export, a 2-seed
# validate and a regions run. Timings are ignored by compare.py.
set -u
REPO=$1; OUT=$2; mkdir -p $OUT; cd "$REPO"
A=${ALLOCATOR:-$REPO/.venv/bin/allocator}
strip() { python3 -c '
import json,sys
def s(o):
    if isinstance(o,dict): return {k:s(v) for k,v in o.items() if "seconds" not in k and k not in ("versions","created_by","created","created_at")}
    if isinstance(o,list): return [s(v) for v in o]
    return o
print(json.dumps(s(json.load(sys.stdin)),indent=1,sort_keys=True))'; }
$A bound --model mlp-2x100 --density 0.001 --json > $OUT/bound1.json 2>&1
$A bound --arch 784,300,100,10 --density 0.01,0.02,1 --json > $OUT/bound2.json 2>&1
$A bound --model lenet5 --density 0.005 --rank-model structural --samples 64 --json > $OUT/bound3.json 2>&1
$A bound --arch 20,10,10,3 --density 0.3 --exact --json > $OUT/bound4.json 2>&1
$A bound --model mlp-2x100 --density 0.001 > $OUT/bound5.txt 2>&1
$A solve --model mlp-2x100 --density 0.001 --json --quiet | strip > $OUT/solve1.json
$A solve --arch 784,300,100,10 --density 0.01 --min-density 0.001 --json --quiet | strip > $OUT/solve2.json
$A solve --arch 784,200,200,200,10 --kept 500 --pin fc1.weight=0.0005 --tie fc2.weight,fc3.weight --json --quiet | strip > $OUT/solve3.json
$A solve --model lenet5 --compression 50 --max-density fc1.weight=0.01 --json --quiet | strip > $OUT/solve4.json
$A solve --arch 100,64,16,3,16,16,1 --kept 5 --json --quiet | strip > $OUT/solve5.json
$A solve --arch 784,300,300,10 --density 0.002 --flops-budget 600 --json --quiet | strip > $OUT/solve6.json
$A solve --model mlp-2x100 --density 0.001 --export nni=$OUT/nni.json --export torch-prune=$OUT/tp.json --export sparseml=$OUT/sml.yaml --export rigl=$OUT/rigl.json --quiet > $OUT/solve1.txt 2>&1
sed -i -E 's/[0-9]+\.[0-9]+ s\b/X s/g' $OUT/solve1.txt
$A validate --model mlp-2x100 --dataset fashion-mnist --density 0.001 --seeds 2 --epochs 3 --finetune-epochs 3 --allocations ours,uniform,erk --out $OUT/val --quiet > $OUT/validate.txt 2>&1
sed -i -E 's/[0-9]+\.[0-9]+ ?s\b/X s/g' $OUT/validate.txt
$A regions --help > /dev/null 2>&1 && $A regions --model mlp-2x100 --dataset fashion-mnist --density 0.01 --train-epochs 1 --finetune-epochs 1 --resolution 50 --out $OUT/reg.png --json --quiet > $OUT/regions.json 2>&1
