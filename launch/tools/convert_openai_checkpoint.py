#!/usr/bin/env python3
"""Turn an OpenAI CLIP checkpoint (ViT-B-16.pt, ViT-B-32.pt, ViT-L-14.pt: TorchScript or plain state dict)
into a .safetensors file that `rada --model FILE` reads (OpenAI/open_clip tensor names, fp16 kept as F16;
rada converts to fp32 on load and uses OpenAI's defaults: head width 64, QuickGELU).

Optional helper: needs `pip install torch safetensors` (CPU wheels are enough). rada itself never needs Python.

Example:
    python3 launch/tools/convert_openai_checkpoint.py ~/.cache/clip/ViT-B-16.pt ViT-B-16.safetensors
    rada embed --model ViT-B-16.safetensors --texts "a photo of a dog." --out dog.npy
Expected: "wrote N tensors to ViT-B-16.safetensors".
"""
import sys

import torch
from safetensors.torch import save_file


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    try:  # OpenAI ships TorchScript archives; open_clip .pt/.bin files are plain state dicts.
        state = torch.jit.load(source, map_location="cpu").state_dict()
    except RuntimeError:
        state = torch.load(source, map_location="cpu")
        state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # OpenAI's build_model drops these non-weight entries too.
    for key in ("input_resolution", "context_length", "vocab_size"):
        state.pop(key, None)
    tensors = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    save_file(tensors, target, metadata={"format": "pt", "source": source})
    print(f"wrote {len(tensors)} tensors to {target}")


if __name__ == "__main__":
    main()
