# Reference numbers for rada's CLIP model (Tests/CLIPTests/CLIPModelTests.swift, WeightLoadingTests.swift).
# Pinned: torch 2.15.0 (CPU), open_clip_torch 3.3.0, transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6.
# Run: /opt/torchenv/bin/python generate_clip_fixtures.py   (writes the files beside this script)
#
# Two tiny random CLIPs (random weights plus noise on every tensor, so no LayerNorm stays at 1/0):
#   openai/  open_clip CLIP, QuickGELU, OpenAI/open_clip names: open_clip_model.safetensors + open_clip_config.json
#            vision width 32, 2 layers, head width 16, patch 8, image 32; text width 32, 2 layers, 2 heads;
#            E = 16, context 16, vocab 256
#   hf/      transformers CLIPModel, exact GELU: config.json + model.safetensors (save_pretrained)
#            vision width 24, 2 layers, 3 heads, mlp 64, patch 8, image 24; text width 16, 1 layer, 2 heads,
#            mlp 64; E = 12, context 16, vocab 256
# The vocabulary is shrunk from 49408 to 256 to keep the files small (a 49408-row table alone would be
# 6 MB): start-of-text is 254 and end-of-text 255 = vocab - 1, playing the roles of 49406 / 49407. One token
# row is padded with 0 after its end-of-text, one is padded with end-of-text itself.
# Inputs (inputs.safetensors, float32 / int32): pixels_openai (3,3,32,32), pixels_hf (3,3,24,24), tokens (3,16).
# Expected (<model>/expected.safetensors, computed in float64 from the stored float32 weights and inputs,
# stored as float32): image_features, text_features (unnormalised), image_embeds, text_embeds (normalised),
# logits_per_image, loss (symmetric CLIP loss, labels = arange(3)), and grad.<name> for EVERY parameter,
# named as in that model's own weight file.
import json
import os

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def clip_loss(image_embeds, text_embeds, logit_scale):
    logits_per_image = logit_scale.exp() * image_embeds @ text_embeds.t()
    labels = torch.arange(image_embeds.shape[0])
    loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.t(), labels)) / 2
    return logits_per_image, loss


def save_expected(folder, model, image_features, text_features, logit_scale):
    image_embeds = F.normalize(image_features, dim=-1)
    text_embeds = F.normalize(text_features, dim=-1)
    logits, loss = clip_loss(image_embeds, text_embeds, logit_scale)
    loss.backward()
    out = {
        "image_features": image_features, "text_features": text_features,
        "image_embeds": image_embeds, "text_embeds": text_embeds,
        "logits_per_image": logits, "loss": loss.reshape([]),
    }
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        out["grad." + name] = p.grad
    out = {k: v.detach().float().contiguous() for k, v in out.items()}
    save_file(out, os.path.join(folder, "expected.safetensors"))
    print(folder, "loss", loss.item())


# Inputs shared by both models.
vocab, context, sot, eot = 256, 16, 254, 255
tokens = torch.zeros(3, context, dtype=torch.int32)
rows = [[sot, 5, 17, 99, 3, eot], [sot, 42, eot], [sot, 7, 8, 9, 10, 11, 12, eot]]
for i, r in enumerate(rows):
    tokens[i, : len(r)] = torch.tensor(r)
tokens[2, len(rows[2]):] = eot  # padded with end-of-text: pooling must still pick the first one
pixels_openai = torch.randn(3, 3, 32, 32)
pixels_hf = torch.randn(3, 3, 24, 24)
save_file({"pixels_openai": pixels_openai, "pixels_hf": pixels_hf, "tokens": tokens},
          os.path.join(here, "inputs.safetensors"))

# --- open_clip model, OpenAI names, QuickGELU -----------------------------------------------------------------
model_cfg = {
    "embed_dim": 16, "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": context, "vocab_size": vocab, "width": 32, "heads": 2, "layers": 2},
}
model = open_clip.model.CLIP(embed_dim=16, vision_cfg=model_cfg["vision_cfg"], text_cfg=model_cfg["text_cfg"],
                             quick_gelu=True)
perturb(model)
folder = os.path.join(here, "openai")
os.makedirs(folder, exist_ok=True)
save_file({k: v.contiguous() for k, v in model.state_dict().items()},
          os.path.join(folder, "open_clip_model.safetensors"))
with open(os.path.join(folder, "open_clip_config.json"), "w") as f:
    json.dump({"model_cfg": model_cfg,
               "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                  "std": [0.26862954, 0.26130258, 0.27577711]}}, f, indent=2)
model = model.double()
image_features = model.encode_image(pixels_openai.double())
text_features = model.encode_text(tokens.long())
save_expected(folder, model, image_features, text_features, model.logit_scale)

# --- transformers CLIPModel, HF names, exact GELU ---------------------------------------------------------------
config = transformers.CLIPConfig(
    text_config={"vocab_size": vocab, "hidden_size": 16, "intermediate_size": 64, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "max_position_embeddings": context, "hidden_act": "gelu",
                 "bos_token_id": sot, "eos_token_id": eot, "pad_token_id": 0},
    vision_config={"hidden_size": 24, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 3,
                   "image_size": 24, "patch_size": 8, "hidden_act": "gelu"},
    projection_dim=12)
hf = transformers.CLIPModel(config)
hf.config._attn_implementation = "eager"
perturb(hf)
folder = os.path.join(here, "hf")
hf.save_pretrained(folder, safe_serialization=True)
hf = hf.double()
vision = hf.vision_model(pixel_values=pixels_hf.double())
text = hf.text_model(input_ids=tokens.long())
save_expected(folder, hf, hf.visual_projection(vision.pooler_output), hf.text_projection(text.pooler_output),
              hf.logit_scale)
