#!/usr/bin/env python3
"""The PyTorch side of `rada bench`: the same workloads, shapes and JSON fields, so launch/bench/compare can print
rada/PyTorch ratios measured side by side. Optional (CI never needs torch).

Pinned: torch 2.15 (CPU), open_clip_torch 3.3.0, torchvision 0.29, Pillow 13 (the project's /opt/torchenv).
Random weights: open_clip.create_model('ViT-B-16-quickgelu' / 'ViT-B-32-quickgelu' / the small config), nothing is
downloaded. Without open_clip (e.g. a bare `pip install torch Pillow` env) the models are MinimalCLIP below, written
from open_clip's architecture with the same ops, and without torchvision the augmentation is the Pillow version
below; every model workload's JSON line says which ran in extra.model_impl / extra.transform_impl. The RAda head is re-implemented here from the reference's math (eft/trainers/rada.py: f and t repeated
to (B, K, D), six nn.Linear projections, three flattened K*K softmax maps times K, their mean times V, out_proj,
relu(1 + .), logits = s * sum(mask * f*t), CE + alpha * LInf), with the same op order, so its cost is the
reference's cost.

Usage: torch_bench.py {clip,rada,ttt,data,allreduce,scaling,sweep} [--repeats N --warmup N --threads T --json --only X]
Example: /opt/torchenv/bin/python launch/bench/torch_bench.py clip --models small --threads 2 --json
         rada bench sweep --keep-data /tmp/sweep --json; torch_bench.py sweep --data /tmp/sweep --threads 2 --json
"""
import argparse
import gc
import glob
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, SOT, EOT = 49408, 49406, 49407


# ---------------------------------------------------------------- measurement

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sgemm_ceiling(n=1024, repeats=3, rounds=3):
    """Best of `rounds` medians (as rada: other jobs on a shared node only lower it)."""
    a, b = torch.rand(n, n) - 0.5, torch.rand(n, n) - 0.5
    torch.mm(a, b)
    best = 0.0
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter(); torch.mm(a, b); times.append(time.perf_counter() - t0)
        best = max(best, 2 * n ** 3 / statistics.median(times) / 1e9)
    return best


class Runner:
    def __init__(self, args, ranks=1, rank=0, ceiling=None):
        self.args, self.ranks, self.rank = args, ranks, rank
        self.threads = torch.get_num_threads()
        self.ceiling = ceiling if ceiling is not None else sgemm_ceiling()

    def wants(self, workload, config):
        """--only head_step+k100: all words must be words of the measurement's name (any --only may match)."""
        words = set(workload.split("/") + config.split())
        return not self.args.only or any(all(w in words for w in o.replace("+", " ").split()) for o in self.args.only)

    def measure(self, workload, config, items, flops, setup, step, threads=None, sync=None, extra=None):
        """Times step(state) after warm-up; sync() (a barrier) before each timed run; times_reduce for ranks."""
        if not self.wants(workload, config):
            return
        gc.collect()
        reset_peak()
        state = setup()
        for _ in range(self.args.warmup):
            step(state)
        times = []
        for _ in range(self.args.repeats):
            if sync:
                sync()
            t0 = time.perf_counter()
            step(state)
            times.append(time.perf_counter() - t0)
        peak = peak_mb()
        if self.ranks > 1:
            import torch.distributed as dist
            t = torch.tensor(times + [peak], dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            times, peak = t[:-1].tolist(), t[-1].item()
        del state
        gc.collect()
        median = statistics.median(times)
        gflops = flops / median / 1e9 if flops else None
        result = dict(tool="pytorch", workload=workload, config=config, threads=threads or self.threads,
                      ranks=self.ranks, repeats=len(times), median_s=median, min_s=min(times), max_s=max(times),
                      items=items, items_per_s=items / median, gflops=gflops, sgemm_ceiling_gflops=self.ceiling,
                      fraction_of_ceiling=gflops / self.ceiling if gflops else None, peak_rss_mb=peak)
        # which implementations ran (MinimalCLIP / Pillow augmentation stand in where open_clip / torchvision are absent)
        if workload.split("/")[0] in ("clip", "ttt", "scaling") or workload == "rada/eft_step":
            extra = {"model_impl": model_impl(), **(extra or {})}
        if workload.startswith("data/"):
            extra = {"transform_impl": train_transform(224)[1], **(extra or {})}
        if extra:
            result["extra"] = extra
        self.report(result)

    def report(self, result):
        """Prints one result on rank 0: a JSON line with --json, else a readable line."""
        if self.rank != 0:
            return
        if self.args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            median, lo, hi, gflops = result["median_s"], result["min_s"], result["max_s"], result["gflops"]
            line = f"{result['workload']:22}{result['config']:30}{median:8.4f} s (min {lo:.4f}, max {hi:.4f})  " \
                   f"{result['items_per_s']:10.2f} items/s"
            if gflops:
                line += f"  {gflops:7.1f} GFLOP/s ({100 * gflops / self.ceiling:4.1f}% of {self.ceiling:.0f})"
            line += f"  peak {result['peak_rss_mb']:.0f} MB"
            for key, value in sorted((result.get("extra") or {}).items()):
                line += f"  {key} {value:.4g}" if isinstance(value, float) else f"  {key} {value}"
            print(line)
        sys.stdout.flush()


# ---------------------------------------------------------------- FLOPs (same formulas as Sources/rada/Bench.swift)

CONFIGS = {
    # name: (open_clip name or None, image size, patch, vision width, vision layers, text width, text layers,
    #        text heads, context, embed dim)
    "small": (None, 64, 8, 256, 6, 256, 6, 4, 32, 256),
    "vit-b-32": ("ViT-B-32-quickgelu", 224, 32, 768, 12, 512, 12, 8, 77, 512),
    "vit-b-16": ("ViT-B-16-quickgelu", 224, 16, 768, 12, 512, 12, 8, 77, 512),
}


def flops_blocks(batch, tokens, width, layers):
    n, c, m, t = batch * tokens, width, 4 * width, tokens
    return layers * (2 * n * (4 * c * c + 2 * c * m) + 4 * batch * t * t * c)


def flops_vision(name, batch):
    _, s, p, vw, vl, _, _, _, _, e = CONFIGS[name]
    g = s // p
    return flops_blocks(batch, g * g + 1, vw, vl) + 2 * batch * g * g * 3 * p * p * vw + 2 * batch * vw * e


def flops_text(name, batch):
    _, _, _, _, _, tw, tl, _, ctx, e = CONFIGS[name]
    return flops_blocks(batch, ctx, tw, tl) + 2 * batch * tw * e


def flops_finetune(name, batch):
    e = CONFIGS[name][-1]
    return 3 * (flops_vision(name, batch) + flops_text(name, batch) + 4 * batch * batch * e)


def flops_head_step(batch, classes, dim):
    return 3 * (12 * batch * classes * dim * dim + 8 * batch * classes * classes * dim)


# ---------------------------------------------------------------- models and inputs

def model_impl():
    """Which CLIP implementation create_clip builds: "open_clip" when importable, else "minimal" (MinimalCLIP)."""
    try:
        import open_clip  # noqa: F401
        return "open_clip"
    except ImportError:
        return "minimal"


def create_clip(name):
    """Random weights (seed 1) of the named config: open_clip's model, or MinimalCLIP without open_clip."""
    oc_name, s, p, vw, vl, tw, tl, th, ctx, e = CONFIGS[name]
    torch.manual_seed(1)
    if model_impl() == "minimal":
        return MinimalCLIP(name)
    import open_clip
    if oc_name:
        model = open_clip.create_model(oc_name, pretrained=None)
    else:
        from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
        model = CLIP(embed_dim=e, quick_gelu=True,
                     vision_cfg=CLIPVisionCfg(layers=vl, width=vw, head_width=vw // 4, patch_size=p, image_size=s),
                     text_cfg=CLIPTextCfg(context_length=ctx, vocab_size=VOCAB, width=tw, heads=th, layers=tl))
    return model


# MinimalCLIP: the CLIP of open_clip's model.py / transformer.py (OpenAI layout, QuickGELU, no LayerScale, no patch
# dropout, class-token pooling after ln_post, text pooled at the end-of-text token), written here from the
# architecture so the benchmarks run where open_clip is not installed. Same modules and ops, hence the same cost;
# the random initialisation differs from open_clip's (the values do not change the timing).
# Shapes: B batch, G grid side, P = G² + 1 tokens, C width, T context, E embed dim.

class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); mlp = c_fc (C -> 4C), QuickGELU, c_proj."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))

    def forward(self, x, attn_mask=None):                          # x (B, P, C)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class MinimalVisionTransformer(nn.Module):
    """conv1 patch embedding, class token, positional embedding, ln_pre, L blocks, ln_post, token 0 @ proj."""

    def __init__(self, image_size, patch_size, width, layers, heads, embed_dim):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, x):                                          # x (B, 3, S, S)
        x = self.conv1(x)                                          # (B, C, G, G)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)   # (B, G², C)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)   # (B, P, C)
        x = self.ln_pre(x + self.positional_embedding)
        x = self.ln_post(self.transformer(x))
        return x[:, 0] @ self.proj                                 # (B, E)


class MinimalTextTransformer(nn.Module):
    """token + positional embedding, L causal blocks, ln_final, the end-of-text token (argmax id) @ text_projection."""

    def __init__(self, context, vocab, width, layers, heads, embed_dim):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(width ** -0.5 * torch.randn(width, embed_dim))
        self.register_buffer("attn_mask", torch.full((context, context), float("-inf")).triu_(1), persistent=False)

    def forward(self, ids):                                        # ids (B, T)
        x = self.token_embedding(ids) + self.positional_embedding  # (B, T, C)
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection   # (B, E)


class MinimalCLIP(nn.Module):
    """open_clip.CLIP's interface: encode_image, encode_text, forward -> (f, u normalised, logit_scale.exp())."""

    def __init__(self, name):
        super().__init__()
        oc_name, s, p, vw, vl, tw, tl, th, ctx, e = CONFIGS[name]
        vision_heads = vw // 64 if oc_name else 4                  # head_width 64 (open_clip), small: vw // 4
        self.visual = MinimalVisionTransformer(s, p, vw, vl, vision_heads, e)
        self.text = MinimalTextTransformer(ctx, VOCAB, tw, tl, th, e)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, image, normalize=False):
        f = self.visual(image)
        return F.normalize(f, dim=-1) if normalize else f

    def encode_text(self, ids, normalize=False):
        u = self.text(ids)
        return F.normalize(u, dim=-1) if normalize else u

    def forward(self, image, ids):
        return self.encode_image(image, normalize=True), self.encode_text(ids, normalize=True), self.logit_scale.exp()


# ---------------------------------------------------------------- augmentation

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class PillowTrainTransform:
    """torchvision's RandomResizedCrop(size, scale, ratio, bicubic) + RandomHorizontalFlip + ToTensor + Normalize
    with Pillow alone: get_params' 10 tries (area ~ U(scale) * area, log-ratio ~ U(log ratio), rounded sides that
    fit), else the centre crop with the ratio clamped; crop, Pillow bicubic resize to size x size, flip with p 0.5;
    (3, S, S) floats normalised by CLIP's mean and std."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=1):
        import random
        self.size, self.scale, self.ratio = size, scale, ratio
        self.rng = random.Random(seed)
        self.mean, self.std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)

    def box(self, width, height):
        """(left, top, w, h) of the crop."""
        area = width * height
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * self.rng.uniform(*self.scale)
            aspect = math.exp(self.rng.uniform(low, high))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return self.rng.randint(0, width - w), self.rng.randint(0, height - h), w, h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def __call__(self, image):                                    # a Pillow RGB image
        from PIL import Image
        left, top, w, h = self.box(*image.size)
        image = image.crop((left, top, left + w, top + h)).resize((self.size, self.size), Image.BICUBIC)
        if self.rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        x = x.permute(2, 0, 1).float() / 255                     # (3, S, S) in [0, 1], as ToTensor
        return (x - self.mean) / self.std


def train_transform(size):
    """(transform, "torchvision" | "pillow"): the training augmentation of CLIP fine-tuning recipes."""
    try:
        from torchvision import transforms as T
    except ImportError:
        return PillowTrainTransform(size), "pillow"
    return T.Compose([
        T.RandomResizedCrop(size, interpolation=T.InterpolationMode.BICUBIC), T.RandomHorizontalFlip(),
        T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]), "torchvision"


def random_pixels(name, batch):
    s = CONFIGS[name][1]
    return torch.randn(batch, 3, s, s)


def random_tokens(name, batch, seed=3):
    ctx = CONFIGS[name][8]
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(batch, ctx, dtype=torch.long)
    for b in range(batch):
        length = 4 + int(torch.randint(0, max(1, ctx - 5), (1,), generator=g))
        ids[b, 0] = SOT
        ids[b, 1:length + 1] = torch.randint(1, VOCAB - 2, (length,), generator=g)
        ids[b, length + 1] = EOT
    return ids


def adamw(params):
    return torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)


class FineTuneStep:
    """Both towers forward + backward, symmetric contrastive loss of the local batch (labels = diagonal), AdamW."""

    def __init__(self, name, batch, wrap=None):
        self.model = create_clip(name)
        self.net = wrap(self.model) if wrap else self.model
        self.opt = adamw(self.model.parameters())
        self.pixels, self.ids = random_pixels(name, batch), random_tokens(name, batch)
        self.labels = torch.arange(batch)

    def __call__(self):
        self.opt.zero_grad(set_to_none=False)
        image, text, scale = self.net(self.pixels, self.ids)[:3]
        logits = scale * image @ text.t()
        loss = (F.cross_entropy(logits, self.labels) + F.cross_entropy(logits.t(), self.labels)) / 2
        loss.backward()
        self.opt.step()


class RAdaHead(nn.Module):
    """The mask head with the reference's op sequence (see the module docstring)."""

    def __init__(self, dim=512, heads=8, temperature=1.0):
        super().__init__()
        self.heads, self.temperature = heads, temperature
        self.q_proj1, self.q_proj2, self.q_proj3 = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.k_proj, self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, f, t, scale):
        imf, txf = f.unsqueeze(1), t.unsqueeze(0)
        it = imf * txf                                   # (B, K, D)
        b, k, d = it.shape
        q1 = self.q_proj1(scale.sqrt() * imf.repeat(1, k, 1))
        q2 = self.q_proj2(scale.sqrt() * txf.repeat(b, 1, 1))
        x = scale * it
        q3, key, value = self.q_proj3(x), self.k_proj(x), self.v_proj(x)
        dh = d // self.heads
        split = lambda y: y.view(b, k, self.heads, dh).transpose(1, 2)
        q1, q2, q3, key, value = map(split, (q1, q2, q3, key, value))
        maps = []
        for q in (q1, q2, q3):
            a = torch.matmul(q, key.transpose(-2, -1)) / dh ** 0.5
            maps.append(F.softmax(a.view(b, self.heads, -1) / self.temperature, dim=-1).view(b, self.heads, k, k) * k)
        out = torch.matmul((maps[0] + maps[1] + maps[2]) / 3, value).transpose(1, 2).reshape(b, k, d)
        mask = torch.relu(torch.ones_like(out) + self.out_proj(out))
        return mask, scale * torch.sum(mask * it, dim=-1)


class HeadStep:
    """A fresh head (seed 1) and its AdamW; text: class features t (K, D) (default random unit rows)."""

    def __init__(self, batch, classes, dim=512, alpha=1.0, lr=1e-4, text=None):
        torch.manual_seed(1)
        self.head = RAdaHead(dim)
        self.opt = torch.optim.AdamW(self.head.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
        self.text = F.normalize(torch.randn(classes, dim), dim=-1) if text is None else text
        self.labels = torch.arange(batch) % classes
        self.scale, self.alpha = torch.tensor(100.0), alpha

    def __call__(self, features, entropy_of_confident=None, labels=None):
        """One step on f (B, D); labels (B) default position % K. Returns the loss."""
        self.opt.zero_grad(set_to_none=False)
        labels = self.labels if labels is None else labels
        mask, logits = self.head(features, self.text, self.scale)
        if entropy_of_confident:
            # TPT: the `selected` lowest-entropy views, entropy of their averaged probabilities
            probs = logits.softmax(-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
            kept = probs[entropy.argsort()[:entropy_of_confident]]
            mean = kept.mean(0)
            loss = -(mean * mean.clamp_min(1e-12).log()).sum()
        else:
            linf = torch.max(torch.abs(mask - 1).view(mask.size(0), -1), dim=1)[0].mean()
            loss = F.cross_entropy(logits, labels) + self.alpha * linf
        loss.backward()
        self.opt.step()
        return loss.detach()


# ---------------------------------------------------------------- workloads

def bench_clip(args, runner):
    for name in args.models.split(","):
        def image_setup(name=name):
            model = create_clip(name).eval()
            return model, random_pixels(name, 32)

        def image_step(state):
            with torch.no_grad():
                state[0].encode_image(state[1], normalize=True)

        runner.measure("clip/image_forward", f"{name} b32", 32, flops_vision(name, 32), image_setup, image_step)

        def text_setup(name=name):
            return create_clip(name).eval(), random_tokens(name, 100)

        def text_step(state):
            with torch.no_grad():
                state[0].encode_text(state[1], normalize=True)

        runner.measure("clip/text_forward", f"{name} b100", 100, flops_text(name, 100), text_setup, text_step)
        runner.measure("clip/finetune_step", f"{name} b16", 16, flops_finetune(name, 16),
                       lambda name=name: FineTuneStep(name, 16), lambda s: s())


def bench_rada(args, runner):
    name = args.model

    def eft_setup():
        model = create_clip(name).eval()
        return model, random_pixels(name, 32), HeadStep(32, 100, CONFIGS[name][-1])

    def eft_step(state):
        model, pixels, head = state
        with torch.no_grad():
            features = model.encode_image(pixels, normalize=True)
        head(features)

    runner.measure("rada/eft_step", f"{name} b32 k100", 32,
                   flops_vision(name, 32) + flops_head_step(32, 100, CONFIGS[name][-1]), eft_setup, eft_step)
    for classes in (100, 1000):
        runner.measure("rada/head_step", f"b32 d512 k{classes}", 1, flops_head_step(32, classes, 512),
                       lambda classes=classes: (HeadStep(32, classes), F.normalize(torch.randn(32, 512), dim=-1)),
                       lambda s: s[0](s[1]))


def bench_ttt(args, runner):
    name, views, classes = args.model, args.views, args.classes

    def setup():
        model = create_clip(name).eval()
        return model, random_pixels(name, views), HeadStep(views, classes, CONFIGS[name][-1])

    def step(state):
        model, pixels, head = state
        with torch.no_grad():
            features = model.encode_image(pixels, normalize=True)
        head(features, entropy_of_confident=args.selected)

    runner.measure("ttt/image", f"{name} v{views} k{classes}", 1,
                   flops_vision(name, views) + flops_head_step(views, classes, CONFIGS[name][-1]), setup, step)


class ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths
        self.transform, self.transform_impl = train_transform(224)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def bench_data(args, runner):
    folder = args.images or generate_images(args.count)
    parallel = args.loader_threads or len(os.sched_getaffinity(0))
    for fmt, suffixes in (("jpeg", (".jpg", ".jpeg")), ("png", (".png",))):
        paths = sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(suffixes))
        if not paths:
            print(f"torch_bench data: no {fmt} images in {folder}; skipped.", file=sys.stderr)
            continue
        for workers in sorted({1, parallel}):
            def step(_, paths=paths, workers=workers):
                # 1 thread: the main process loads (num_workers=0); N: N worker processes, as a user would.
                loader = torch.utils.data.DataLoader(ImageFiles(paths), batch_size=32,
                                                     num_workers=0 if workers == 1 else workers,
                                                     prefetch_factor=None if workers == 1 else 2)
                for _ in loader:
                    pass
            runner.measure("data/decode_augment", f"{fmt} 224 w{workers}", len(paths), None, lambda: None, step,
                           threads=workers)


def generate_images(count, folder=None):
    """count 500x375 JPEG (quality 90) + PNG images: gradient, five discs, +-6 noise (as rada's generator)."""
    import numpy as np
    from PIL import Image
    folder = folder or f"/tmp/rada-bench-images-py{os.getpid()}"
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = 375, 500
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(count):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = ((xx + yy) / (w + h))[..., None]
        img = a * (1 - t) + b * t
        for _ in range(5):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 100)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        img = np.clip(img + rng.uniform(-6, 6, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"{i:04d}.jpg"), quality=90)
        Image.fromarray(img).save(os.path.join(folder, f"{i:04d}.png"))
    return folder


def image_folder(root):
    """(paths, labels, class names) of root/CLASS/*.png|*.jpg, classes and files sorted by name (rada's imagefolder)."""
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for label, name in enumerate(names):
        for file in sorted(os.listdir(os.path.join(root, name))):
            if file.lower().endswith((".png", ".jpg", ".jpeg")):
                paths.append(os.path.join(root, name, file)); labels.append(label)
    return paths, labels, names


def prompt_ids(model, prompts, context):
    """ids (K, T) of the prompts: open_clip's BPE tokenizer, or (MinimalCLIP, no tokenizer here) start-of-text, one id
    per byte, end-of-text. The text tower's cost depends on K and T only."""
    if model_impl() == "open_clip":
        import open_clip
        return open_clip.tokenize(prompts, context_length=context)
    ids = torch.zeros(len(prompts), context, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        body = list(prompt.encode())[:context - 2]
        ids[row, :len(body) + 2] = torch.tensor([SOT] + [256 + b for b in body] + [EOT])
    return ids


def bench_sweep(args, runner):
    """The reference-style EFT sweep rada bench sweep measures: per (lr, alpha) a fresh RAda head, the class text
    features computed once, then every step of every epoch decodes the batch's images, augments them (random resized
    crop + flip), runs the frozen image tower under no_grad, normalises and takes a head step (CE + alpha * LInf,
    AdamW, cosine lr per epoch as Dassl). Images: DIR/train written by `rada bench sweep --keep-data DIR` (or
    `rada synth`). One timed run of the whole sweep (wall time, peak RSS), as rada's sweep rows."""
    from PIL import Image
    paths, labels, names = image_folder(os.path.join(args.data, "train"))
    if len(paths) < args.batch_size:
        sys.exit(f"torch_bench sweep: {len(paths)} images in {args.data}/train, fewer than one batch of "
                 f"{args.batch_size}; write them with `rada bench sweep --keep-data {args.data}`")
    preset, batch = args.preset, args.batch_size
    context, dim = CONFIGS[preset][8], CONFIGS[preset][-1]
    steps_per_epoch = len(paths) // batch
    gc.collect()
    reset_peak()
    t0 = time.perf_counter()
    model = create_clip(preset).eval()
    model.requires_grad_(False)
    transform, transform_name = train_transform(CONFIGS[preset][1])
    losses = []
    for lr in args.lrs:
        for alpha in args.alphas:
            with torch.no_grad():
                ids = prompt_ids(model, [f"a photo of a {n.replace('_', ' ')}." for n in names], context)
                text = model.encode_text(ids, normalize=True)                      # t (K, E), once per run
            head = HeadStep(batch, len(names), dim, alpha=alpha, lr=lr, text=text)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(head.opt, T_max=args.epochs)
            order = torch.Generator().manual_seed(1)
            for _ in range(args.epochs):
                permutation = torch.randperm(len(paths), generator=order).tolist()
                for step in range(steps_per_epoch):
                    chosen = permutation[step * batch:(step + 1) * batch]
                    images = []
                    for i in chosen:
                        with Image.open(paths[i]) as image:
                            images.append(transform(image.convert("RGB")))
                    with torch.no_grad():
                        features = model.encode_image(torch.stack(images), normalize=True)   # f (B, E)
                    losses.append(head(features, labels=torch.tensor([labels[i] for i in chosen])).item())
                schedule.step()
    seconds = time.perf_counter() - t0
    if not all(math.isfinite(x) for x in losses):
        sys.exit("torch_bench sweep: a loss is not finite; the timing is void")
    runs = len(args.lrs) * len(args.alphas)
    runner.report(dict(tool="pytorch", workload="sweep/eft_reference",
                       config=f"{preset} {runs} runs {len(paths)} img {args.epochs} ep b{batch}",
                       threads=runner.threads, ranks=1, repeats=1, median_s=seconds, min_s=seconds, max_s=seconds,
                       items=runs, items_per_s=runs / seconds, gflops=None, sgemm_ceiling_gflops=runner.ceiling,
                       fraction_of_ceiling=None, peak_rss_mb=peak_mb(),
                       extra=dict(runs=runs, steps=len(losses), model_impl=model_impl(), transform_impl=transform_name,
                                  loader="main process")))


def gradient_count(name):
    return sum(p.numel() for p in create_clip(name).parameters())


def distributed_worker(rank, world, port, args, kind):
    import torch.distributed as dist
    os.sched_setaffinity(0, {rank % os.cpu_count()})   # as mpirun binds one core per rank
    torch.set_num_threads(args.threads or 1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    runner = Runner(args, ranks=world, rank=rank)
    t = torch.tensor([runner.ceiling]); dist.all_reduce(t); runner.ceiling = t.item()
    sync = dist.barrier
    if kind == "allreduce":
        for name in args.models.split(","):
            count = gradient_count(name)
            mb = count * 4 / 1e6
            runner.measure("allreduce/gradients", f"{name} {round(mb)} MB", mb, None,
                           lambda count=count: torch.full((count,), 1e-3), lambda buf: dist.all_reduce(buf), sync=sync)
    else:
        from torch.nn.parallel import DistributedDataParallel as DDP
        batch = args.batch
        runner.measure("scaling/finetune_step", f"{args.model} b{batch}x{world}r", batch * world,
                       world * flops_finetune(args.model, batch),
                       lambda: FineTuneStep(args.model, batch, wrap=DDP), lambda s: s(), sync=sync)
    dist.destroy_process_group()


def bench_distributed(args, kind):
    """allreduce / scaling with --ranks processes (gloo, one core each); --ranks 1 runs in this process."""
    if args.ranks == 1 and kind == "scaling":
        torch.set_num_threads(args.threads or 1)
        runner = Runner(args)
        runner.measure("scaling/finetune_step", f"{args.model} b{args.batch}x1r", args.batch,
                       flops_finetune(args.model, args.batch), lambda: FineTuneStep(args.model, args.batch), lambda s: s())
        return
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    mp.spawn(distributed_worker, args=(args.ranks, port, args, kind), nprocs=args.ranks, join=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parsers = {name: sub.add_parser(name) for name in ("clip", "rada", "ttt", "data", "allreduce", "scaling", "sweep")}
    for p in parsers.values():
        p.add_argument("--repeats", type=int, default=5)
        p.add_argument("--warmup", type=int, default=1)
        p.add_argument("--threads", type=int, default=None)
        p.add_argument("--json", action="store_true")
        p.add_argument("--only", action="append", default=[],
                       help="run only measurements whose names contain all these words (repeatable: any)")
    parsers["clip"].add_argument("--models", default="small,vit-b-32,vit-b-16")
    parsers["allreduce"].add_argument("--models", default="small,vit-b-16")
    for name in ("rada", "ttt"):
        parsers[name].add_argument("--model", default="vit-b-16")
    parsers["ttt"].add_argument("--views", type=int, default=64)
    parsers["ttt"].add_argument("--classes", type=int, default=200)
    parsers["ttt"].add_argument("--selected", type=int, default=6)
    parsers["data"].add_argument("--images", default=None)
    parsers["data"].add_argument("--count", type=int, default=64)
    parsers["data"].add_argument("--loader-threads", type=int, default=None)
    parsers["data"].add_argument("--generate", default=None, help="only write the test images into this folder")
    parsers["scaling"].add_argument("--model", default="small")
    parsers["scaling"].add_argument("--batch", type=int, default=16)
    parsers["sweep"].add_argument("--data", required=True, help="folder with train/CLASS/*.png (rada bench sweep --keep-data)")
    parsers["sweep"].add_argument("--preset", default="small", choices=sorted(CONFIGS))
    parsers["sweep"].add_argument("--epochs", type=int, default=5)
    parsers["sweep"].add_argument("--batch-size", type=int, default=32)
    parsers["sweep"].add_argument("--lrs", type=float, nargs="+", default=[1e-3, 2e-3, 4e-3])
    parsers["sweep"].add_argument("--alphas", type=float, nargs="+", default=[0, 0.5, 1])
    for name in ("allreduce", "scaling"):
        parsers[name].add_argument("--ranks", type=int, default=2 if name == "allreduce" else 1)
    args = parser.parse_args()
    if args.command == "data" and args.generate:
        generate_images(args.count, args.generate)
        return
    if args.command in ("allreduce", "scaling"):
        bench_distributed(args, args.command)
        return
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    runner = Runner(args)
    {"clip": bench_clip, "rada": bench_rada, "ttt": bench_ttt, "data": bench_data,
     "sweep": bench_sweep}[args.command](args, runner)


if __name__ == "__main__":
    main()
