# Writes the RAda head, optimiser and schedule fixtures read by Tests/RAdaTests and Tests/TrainingTests.
# Pinned: torch 2.15 (CPU), numpy; run with /opt/torchenv/bin/python generate_rada_fixtures.py (from this folder).
# The head is re-derived here from the authors' eft/trainers/rada.py (SimpleMultiheadAttention, CustomCLIP.forward,
# LInfLoss) with the same tensor ops (repeat, flattened K*K softmax, * K, mean of three maps) and evaluated in
# float64 from float32-stored inputs, so the numbers do not depend on any BLAS. Parameters and gradients are
# stored flat in the order of torch's named_parameters (= our ParameterTable order): mha.q_proj1.weight, .bias,
# q_proj2, q_proj3, k_proj, v_proj, out_proj.
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
rng = np.random.default_rng(1234)
NAMES = ["q_proj1", "q_proj2", "q_proj3", "k_proj", "v_proj", "out_proj"]


def f32(x):
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def save(name, array):
    np.save(name + ".npy", array)


def unit_rows(n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return f32(x / np.linalg.norm(x, axis=1, keepdims=True))


def init_params(d, out_scale):
    """torch.nn.Linear-like init (uniform +-1/sqrt(d)); out_proj uniform +-out_scale (0 = the reference's zero init)."""
    params = []
    bound = 1 / math.sqrt(d)
    for name in NAMES:
        b = out_scale if name == "out_proj" else bound
        params.append(f32(rng.uniform(-b, b, (d, d))))
        params.append(f32(rng.uniform(-b, b, (d,))))
    return params


def head_forward(params, f, t, logit_scale, temperature, heads=8):
    """Mirrors CustomCLIP.forward + SimpleMultiheadAttention.forward; returns mask (B,K,D) and logits (B,K)."""
    w = {}
    for i, name in enumerate(NAMES):
        w[name] = (params[2 * i], params[2 * i + 1])
    lin = lambda x, name: F.linear(x, *w[name])
    imf, txf = f.unsqueeze(1), t.unsqueeze(0)
    scale = logit_scale.exp()
    it = imf * txf                                  # (B, K, D)
    B, K, D = it.shape
    q1, q2 = imf.repeat(1, K, 1), txf.repeat(B, 1, 1)
    s = scale.detach()
    query1, query2, x = s.sqrt() * q1, s.sqrt() * q2, s * it
    q1, q2, q3, k, v = lin(query1, "q_proj1"), lin(query2, "q_proj2"), lin(x, "q_proj3"), lin(x, "k_proj"), lin(x, "v_proj")
    dh = D // heads
    split = lambda y: y.view(B, K, heads, dh).transpose(1, 2)
    q1, q2, q3, k, v = map(split, (q1, q2, q3, k, v))
    maps = []
    for q in (q1, q2, q3):
        a = torch.matmul(q, k.transpose(-2, -1)) / (dh ** 0.5)
        a = F.softmax(a.reshape(B, heads, -1) / temperature, dim=-1).view(B, heads, K, K) * K
        maps.append(a)
    out = torch.matmul((maps[0] + maps[1] + maps[2]) / 3, v).transpose(1, 2).reshape(B, K, D)
    out = lin(out, "out_proj")
    mask = torch.relu(torch.ones_like(out) + out)
    logits = scale * torch.sum(mask * it, dim=-1)
    return mask, logits


def mask_loss(mask, kind):
    if kind == "linf":
        return torch.max(torch.abs(mask - 1).view(mask.size(0), -1), dim=1)[0].mean()
    return torch.mean((mask - 1) ** 2)


def run_case(name, batch, classes, dim, out_scale, temperature, alpha, kind, logit_scale=math.log(100.0)):
    f, t = unit_rows(batch, dim), unit_rows(classes, dim)
    labels = rng.integers(0, classes, batch).astype(np.int32)
    params = init_params(dim, out_scale)
    tp = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    tf = torch.tensor(f, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    ls = torch.tensor(logit_scale, dtype=torch.float64)
    mask, logits = head_forward(tp, tf, tt, ls, temperature)
    ce = F.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))
    aux = mask_loss(mask, kind)
    total = ce + alpha * aux
    total.backward()
    save(f"{name}_image", f); save(f"{name}_text", t); save(f"{name}_labels", labels)
    save(f"{name}_params", f32(np.concatenate([p.ravel() for p in params])))
    save(f"{name}_mask", f32(mask.detach().numpy())); save(f"{name}_logits", f32(logits.detach().numpy()))
    save(f"{name}_grads", f32(np.concatenate([p.grad.numpy().ravel() for p in tp])))
    save(f"{name}_dimage", f32(tf.grad.numpy())); save(f"{name}_dtext", f32(tt.grad.numpy()))
    meta = dict(batch=batch, classes=classes, dim=dim, heads=8, temperature=temperature, alpha=alpha, loss=kind,
                logit_scale=logit_scale, total=total.item(), ce=ce.item(), mask_loss=aux.item())
    with open(f"{name}.json", "w") as fh:
        json.dump(meta, fh, indent=1)
    print(name, meta)


def training_case():
    """20 steps of plain SGD on a fixed feature set from the reference init (out_proj zero)."""
    n, batch, classes, dim, steps, lr, temperature, alpha = 12, 4, 5, 32, 20, 2e-4, 0.5, 0.5
    f, t = unit_rows(n, dim), unit_rows(classes, dim)
    labels = rng.integers(0, classes, n).astype(np.int32)
    params = init_params(dim, 0.0)
    tp = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    tt = torch.tensor(t, dtype=torch.float64)
    opt = torch.optim.SGD(tp, lr=lr)
    losses = []
    for step in range(steps):
        idx = [(batch * step + j) % n for j in range(batch)]
        tf = torch.tensor(f[idx], dtype=torch.float64)
        mask, logits = head_forward(tp, tf, tt, torch.tensor(math.log(100.0), dtype=torch.float64), temperature)
        loss = F.cross_entropy(logits, torch.tensor(labels[idx], dtype=torch.long)) + alpha * mask_loss(mask, "linf")
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    save("train_image", f); save("train_text", t); save("train_labels", labels)
    save("train_params", f32(np.concatenate([p.ravel() for p in params])))
    meta = dict(samples=n, batch=batch, classes=classes, dim=dim, steps=steps, lr=lr, temperature=temperature,
                alpha=alpha, logit_scale=math.log(100.0), losses=losses)
    with open("train.json", "w") as fh:
        json.dump(meta, fh, indent=1)
    print("train losses", losses)


def optimizer_case():
    """5 steps of torch.optim on two tensors (w decays, b does not) with given float32 gradients."""
    w0, b0 = f32(rng.standard_normal((3, 4))), f32(rng.standard_normal(4))
    grads = [(f32(rng.standard_normal((3, 4))), f32(rng.standard_normal(4))) for _ in range(5)]
    save("optim_initial", f32(np.concatenate([w0.ravel(), b0])))
    save("optim_grads", f32(np.stack([np.concatenate([g[0].ravel(), g[1]]) for g in grads])))
    configs = {
        "sgd": (torch.optim.SGD, dict(lr=0.1, weight_decay=0.01)),
        "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        "adam": (torch.optim.Adam, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
        "adamw": (torch.optim.AdamW, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    }
    out = {}
    for name, (cls, kw) in configs.items():
        w, b = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
        wd = kw.pop("weight_decay")
        opt = cls([{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}], foreach=False, **kw)
        kw["weight_decay"] = wd
        history = []
        for gw, gb in grads:
            w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
            opt.step()
            history.append(np.concatenate([w.detach().numpy().ravel(), b.detach().numpy()]).astype(float).tolist())
        out[name] = dict(hyper={k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}, params=history)
    with open("optim.json", "w") as fh:
        json.dump(out, fh, indent=1)


class DasslConstantWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Dassl's ConstantWarmupScheduler semantics (dassl/optim/lr_scheduler.py): cons_lr for warmup_epoch epochs,
    then the successor (CosineAnnealingLR(T_max = max_epoch), recounted from 0)."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr):
        self.successor, self.warmup_epoch, self.cons_lr = successor, warmup_epoch, cons_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)


def schedule_case():
    p = torch.nn.Parameter(torch.zeros(1))
    out = {}
    # cosine, no warmup: CosineAnnealingLR(T_max=20, eta_min=1e-5), 25 steps (past the end it rises again).
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=1e-5)
    lrs = []
    for _ in range(25):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    out["cosine"] = dict(base=0.1, warmup=0, total=20, min_lr=1e-5, lrs=lrs)
    # linear warmup (lr*(s+1)/W for s < W) then cosine over total-W steps.
    opt = torch.optim.SGD([p], lr=0.1)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 5, end_factor=1.0, total_iters=4)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15, eta_min=0.0)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[5])
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    out["warmup_cosine"] = dict(base=0.1, warmup=5, total=20, min_lr=0.0, lrs=lrs)
    # Dassl: cosine over MAX_EPOCH=5 with WARMUP_EPOCH=1 constant 1e-5 (the authors' RAda config), per epoch.
    opt = torch.optim.Adam([p], lr=1e-4)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(5))
    sched = DasslConstantWarmup(opt, cos, 1, 1e-5)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    out["dassl"] = dict(base=1e-4, max_epochs=5, warmup_epochs=1, warmup_lr=1e-5, lrs=lrs)
    with open("schedules.json", "w") as fh:
        json.dump(out, fh, indent=1)
    print(out)


def tie_check():
    """torch.max(dim) on CPU returns (and its backward routes to) the FIRST maximal index."""
    x = torch.tensor([[0.5, 2.0, -2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    torch.max(torch.abs(x), dim=1)[0].sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0, 0.0]], x.grad


if __name__ == "__main__":
    tie_check()
    run_case("linf", batch=4, classes=5, dim=32, out_scale=0.3, temperature=0.5, alpha=0.7, kind="linf")
    run_case("zeroshot", batch=4, classes=5, dim=32, out_scale=0.0, temperature=1.0, alpha=0.7, kind="linf")
    run_case("mse", batch=3, classes=6, dim=32, out_scale=0.3, temperature=2.0, alpha=0.5, kind="mse")
    # K = 21 exercises the 16-wide vector loops and their tails in the attention kernels.
    run_case("wide", batch=2, classes=21, dim=32, out_scale=0.2, temperature=0.8, alpha=0.6, kind="linf")
    training_case()
    optimizer_case()
    schedule_case()
