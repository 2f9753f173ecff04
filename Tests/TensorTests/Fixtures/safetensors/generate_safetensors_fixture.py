# Writes python_written.safetensors with the reference `safetensors` library: one tensor per dtype rada reads
# (F32, F16, BF16, F64), an I64 tensor (rada lists it but refuses to read it as floats) and __metadata__.
# Values are exactly representable in every dtype, so the test compares exactly.
# Pinned: python 3, torch 2.15 (CPU), safetensors (from /opt/torchenv). Run: python generate_safetensors_fixture.py
import os
import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
values = torch.tensor([[1.0, -2.5, 0.125], [1024.0, -0.0, 3.0]])
tensors = {
    "a.f32": values.clone(),
    "b.f16": values.to(torch.float16),
    "c.bf16": values.to(torch.bfloat16),
    "d.f64": values.to(torch.float64).reshape(3, 2),
    "e.i64": torch.arange(4, dtype=torch.int64),
    "f.scalar": torch.tensor(2.75),
}
save_file(tensors, os.path.join(here, "python_written.safetensors"), metadata={"format": "pt", "note": "rada fixture"})
