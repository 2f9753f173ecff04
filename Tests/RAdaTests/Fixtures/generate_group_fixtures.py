# Writes optim_groups.json, read by Tests/TrainingTests/ParameterGroupTests.swift: torch.optim with parameter groups
# of different lr and weight decay under one LambdaLR (linear warm-up then cosine), as rada's FFT groups.
# Generated with torch 2.13.0+cpu (CPU wheel), numpy; run with /tmp/torchenv/bin/python generate_group_fixtures.py
# (from this folder). Only optim_groups.json is written; the other fixtures here come from generate_rada_fixtures.py.
# Tensors: a.w (3, 4) and a.b (4) in group "a" (lr 1e-3, wd 0.1), b.w (2, 3) and b.b (3) in group "b" (lr 2e-2,
# wd 0.01); vectors are in torch groups of their own with weight_decay 0 (open_clip's exclusion) and the group's lr.
# Initial values and 6 steps of gradients are float32 and stored; params[s] are all tensors after step s + 1, flat
# in the order a.w, a.b, b.w, b.b; lrs[s] = the scheduler's lr of (a, b) used by step s + 1.
import json
import math

import numpy as np
import torch

rng = np.random.default_rng(2026)
STEPS, WARMUP = 6, 2
SHAPES = [("a.w", (3, 4)), ("a.b", (4,)), ("b.w", (2, 3)), ("b.b", (3,))]
GROUPS = {"a": dict(lr=1e-3, weight_decay=0.1), "b": dict(lr=2e-2, weight_decay=0.01)}


def f32(x):
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def factor(step):
    """torch LambdaLR lambda: (s + 1)/W during warm-up, then half a cosine over the remaining STEPS - W steps."""
    if step < WARMUP:
        return (step + 1) / WARMUP
    return (1 + math.cos(math.pi * (step - WARMUP) / (STEPS - WARMUP))) / 2


def main():
    initial = [f32(rng.standard_normal(shape)) for _, shape in SHAPES]
    grads = [[f32(rng.standard_normal(shape)) for _, shape in SHAPES] for _ in range(STEPS)]
    cases = {
        "adamw": (torch.optim.AdamW, dict(betas=(0.9, 0.98), eps=1e-6)),
        "sgd_momentum": (torch.optim.SGD, dict(momentum=0.9)),
    }
    out = {"torch": torch.__version__, "shapes": {n: list(s) for n, s in SHAPES}, "groups": GROUPS,
           "warmup": WARMUP, "steps": STEPS,
           "initial": np.concatenate([x.ravel() for x in initial]).astype(float).tolist(),
           "grads": [np.concatenate([g.ravel() for g in step]).astype(float).tolist() for step in grads]}
    for name, (cls, kw) in cases.items():
        tensors = [torch.tensor(x, requires_grad=True) for x in initial]
        param_groups = []
        for i, group in enumerate(["a", "a", "b", "b"]):
            decay = GROUPS[group]["weight_decay"] if tensors[i].ndim >= 2 else 0.0
            param_groups.append({"params": [tensors[i]], "lr": GROUPS[group]["lr"], "weight_decay": decay})
        opt = cls(param_groups, foreach=False, **kw)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        params, lrs = [], []
        for step in range(STEPS):
            lrs.append([opt.param_groups[0]["lr"], opt.param_groups[2]["lr"]])
            for t, g in zip(tensors, grads[step]):
                t.grad = torch.tensor(g)
            opt.step()
            sched.step()
            params.append(np.concatenate([t.detach().numpy().ravel() for t in tensors]).astype(float).tolist())
        out[name] = dict(hyper={k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}, params=params, lrs=lrs)
    with open("optim_groups.json", "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
