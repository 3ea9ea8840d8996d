"""Compare two snapshot folders ignoring timings (keys containing 'seconds', csv column 'seconds') and paths."""
import csv, json, sys, io
from pathlib import Path
a, b = Path(sys.argv[1]), Path(sys.argv[2])
def strip(o):
    if isinstance(o, dict): return {k: strip(v) for k, v in o.items() if "seconds" not in k and k not in ("versions", "created_by")}
    if isinstance(o, list): return [strip(v) for v in o]
    return o
def norm(path, root):
    text = path.read_text().replace(str(root), "ROOT")
    if path.suffix == ".json":
        try: return json.dumps(strip(json.loads(text)), indent=1, sort_keys=True)
        except ValueError: return text
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in rows], indent=1)
    return text
files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()} | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
bad = 0
for rel in files:
    if rel.suffix in (".png", ".pt") or "dense" in rel.parts: continue
    pa, pb = a / rel, b / rel
    if not pa.is_file() or not pb.is_file():
        print("only in one:", rel); bad += 1; continue
    if norm(pa, a) != norm(pb, b):
        print("DIFFERS:", rel); bad += 1
print(f"{len(files)} files compared, {bad} differ")
