"""Per-step times of hybrid training at one batch size (the diagnostic behind steps_4096.txt; ran from the
repository root as ``python3 bisect/steps.py DATA MODEL BATCH KW_JSON``, reformatted here, same statements)."""

import json
import sys
import time

sys.path.insert(0, "scripts")

import bench_gpu as bg  # noqa: E402
import torch  # noqa: E402

from hybridjet.models.datamodule import JetDataModule  # noqa: E402

data, model, b, kw = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
dm = JetDataModule(data, batch_size=64)
dm.setup("fit")


class A:
    hybrid_kw: list[str] = []
    quantization = "nf4"
    dtype = "bf16"
    lora = "attn"
    n_soft_tokens = 8


A.model = model
clf = bg.make_hybrid(A, dm, **kw)
batches = [{k: v.to("cuda") for k, v in x.items()} for x in bg.sample_batches(dm, b, 12)]
opt = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=1e-5)
clf.train()
for name, ac in (("autocast-all", True), ("autocast-fwd", False)):
    times = []
    for x in batches:
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = clf.loss(x)
            if ac:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        if not ac:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    print(name, b, kw, "train ms/step:", " ".join(f"{1e3 * s:.0f}" for s in times), flush=True)
