"""Pack a grid's results for the trip back: metrics, timings and eval-only model copies."""
import io, json, sys, tarfile
from pathlib import Path
import torch

work, out, mods = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
LIMIT = 15 * 2**20
with tarfile.open(out / "metrics.tgz", "w:gz") as t:
    for p in sorted(work.rglob("*")):
        if p.is_file() and (p.suffix in (".json", ".jsonl", ".mk") or p.name in ("subset-n",)) and "/adv/" not in str(p):
            t.add(p, arcname=str(p.relative_to(work)))
for m in mods:
    tgt = out / f"models-{m}.tgz"
    with tarfile.open(tgt, "w:gz") as t:
        for p in sorted((work / m).glob("s0/models/*.ckpt")):
            if p.name.startswith(("control", "noise", "purified", "advtrain-fgsm", "advtrain-pgd", "rdmaa-", "dcae-")):
                continue
            try:
                blob = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as e:               # a half-written file of a killed step
                print(f"skip {p}: {e}"); continue
            blob.pop("trainer", None)
            buf = io.BytesIO(); torch.save(blob, buf); data = buf.getvalue()
            info = tarfile.TarInfo(str(p.relative_to(work))); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    if tgt.stat().st_size > LIMIT:
        print(f"{tgt.name}: {tgt.stat().st_size} bytes, over the limit: dropped"); tgt.unlink()
for p in sorted(out.iterdir()):
    print(p.name, p.stat().st_size)
