# Writes the preprocessing fixtures read by PreprocessTests / ImageDecodingTests (ImagingTests) and
# AugmentationTests (DataTests, which read this folder through #filePath).
# Pinned: Pillow 13.0.0, torchvision 0.29, torch 2.15, open_clip_torch 3.3.0, numpy (python 3.11).
# Run: /opt/torchenv/bin/python generate_preprocess_cases.py   (from this folder)
# Outputs: small synthetic PNG/JPEG sources, cases.json, and per case:
#   <name>.decoded.npy  np.asarray(Image.open(src)) (H, W[, C]) for every source (uint8, or int32 for I;16;
#                       P as its RGB colours, 1 as 0/255)
#   <name>.rgb.npy      Resize(N, bicubic) -> CenterCrop(N) -> convert("RGB") as (N, N, 3) uint8
#   <name>.tensor.npy   open_clip's eval transform output (3, N, N) float32
#   resize/crop fixtures: Pillow Image.resize and torchvision resized_crop results as (H, W, 3) uint8.
import json, os, struct, zlib
import numpy as np
import PIL
from PIL import Image
import torch, torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
import open_clip

assert PIL.__version__.startswith("13."), PIL.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(2024)


def smooth(h, w, c, noise=12):
    """Gradients + blobs + a little noise: compresses to a few KB, exercises every byte range."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        v = 127 + 100 * np.sin(x / (3 + k) + y / (5 + 2 * k)) + 60 * np.cos((x - y) / (7 + k))
        planes.append(v + rng.normal(0, noise, (h, w)))
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def write_png(path, array, color_type, depth):
    """Minimal PNG writer for the types Pillow cannot save (16-bit RGB/RGBA/LA, 2/4-bit gray)."""
    h, w = array.shape[:2]
    rows = []
    for r in range(h):
        if depth == 16:
            rows.append(b"\x00" + array[r].astype(">u2").tobytes())
        elif depth < 8:
            bits = "".join(format(int(v), f"0{depth}b") for v in array[r].reshape(-1))
            bits += "0" * (-len(bits) % 8)
            rows.append(b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big"))
        else:
            rows.append(b"\x00" + array[r].tobytes())
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


def save(name, make):
    path = os.path.join(HERE, name)
    make(path)
    return name


sources = []  # (file, N)
# RGB, down-scaled landscape
save("rgb_down.png", lambda p: Image.fromarray(smooth(50, 67, 3)).save(p)); sources.append(("rgb_down.png", 32))
# RGB, up-scaled portrait
save("rgb_up_portrait.png", lambda p: Image.fromarray(smooth(27, 19, 3)).save(p)); sources.append(("rgb_up_portrait.png", 32))
# RGB, odd crop offset: 33x70 -> 32x67, left/top offset round(17.5) = 18 (half to even)
save("rgb_odd.png", lambda p: Image.fromarray(smooth(70, 33, 3)).save(p)); sources.append(("rgb_odd.png", 32))
# already N x N, and N wide (crop only)
save("rgb_exact.png", lambda p: Image.fromarray(smooth(32, 32, 3)).save(p)); sources.append(("rgb_exact.png", 32))
save("rgb_crop_only.png", lambda p: Image.fromarray(smooth(48, 32, 3)).save(p)); sources.append(("rgb_crop_only.png", 32))
# RGBA semi-transparent (alpha 0..255 incl. 0 and 255 areas), down
def rgba(p):
    a = smooth(41, 53, 4); a[..., 3] = np.clip(np.linspace(-40, 300, 53)[None, :].repeat(41, 0), 0, 255).astype(np.uint8)
    Image.fromarray(a, "RGBA").save(p)
save("rgba_semi.png", rgba); sources.append(("rgba_semi.png", 32))
# L portrait down, LA up
save("gray.png", lambda p: Image.fromarray(smooth(57, 40, 1)[..., 0], "L").save(p)); sources.append(("gray.png", 32))
def la(p):
    a = smooth(37, 29, 2); a[..., 1] = np.clip(np.linspace(300, -30, 37)[:, None].repeat(29, 1), 0, 255).astype(np.uint8)
    Image.fromarray(a, "LA").save(p)
save("la.png", la); sources.append(("la.png", 32))
# 16-bit gray (Pillow I;16; values 0..700 so the RGB conversion clips some to 255), down
save("gray16.png", lambda p: write_png(p, (smooth(44, 36, 1)[..., 0].astype(np.uint32) * 700 // 255).astype(np.uint16), 0, 16)); sources.append(("gray16.png", 32))
# 16-bit RGB (down) and RGBA (up): Pillow keeps the high byte
save("rgb16.png", lambda p: write_png(p, smooth(35, 38, 3).astype(np.uint16) * 257 + rng.integers(0, 256, (35, 38, 3)).astype(np.uint16), 2, 16)); sources.append(("rgb16.png", 32))
def rgba16(p):
    a = smooth(30, 25, 4).astype(np.uint16) * 256 + 77
    a[..., 3] = np.linspace(0, 65535, 25)[None, :].repeat(30, 0).astype(np.uint16)
    write_png(p, a, 6, 16)
save("rgba16.png", rgba16); sources.append(("rgba16.png", 32))
# palette with transparency (Pillow P, resized with NEAREST), down
def palette(p):
    im = Image.fromarray(smooth(33, 41, 3)).quantize(16)
    im.save(p, transparency=3)
save("palette_trns.png", palette); sources.append(("palette_trns.png", 32))
# 1-bit (Pillow mode 1, NEAREST) and 4-bit gray (L), up
save("bilevel.png", lambda p: Image.fromarray(smooth(35, 37, 1)[..., 0] > 127).save(p)); sources.append(("bilevel.png", 32))
save("gray4.png", lambda p: write_png(p, smooth(34, 30, 1)[..., 0] >> 4, 0, 4)); sources.append(("gray4.png", 32))
# JPEG: colour 4:2:0 down, gray up, progressive, 4:4:4 portrait
save("jpeg_rgb.jpg", lambda p: Image.fromarray(smooth(45, 60, 3)).save(p, quality=90)); sources.append(("jpeg_rgb.jpg", 32))
save("jpeg_gray.jpg", lambda p: Image.fromarray(smooth(39, 27, 1)[..., 0], "L").save(p, quality=85)); sources.append(("jpeg_gray.jpg", 32))
save("jpeg_progressive.jpg", lambda p: Image.fromarray(smooth(42, 50, 3)).save(p, quality=80, progressive=True)); sources.append(("jpeg_progressive.jpg", 32))
save("jpeg_444.jpg", lambda p: Image.fromarray(smooth(61, 43, 3)).save(p, quality=95, subsampling=0)); sources.append(("jpeg_444.jpg", 24))

cases = []
for file, n in sources:
    stem = file.rsplit(".", 1)[0]
    im = Image.open(os.path.join(HERE, file)); im.load()
    # P is stored as its palette colours and 1 as 0/255 bytes, as our decoder returns them.
    decoded = im.convert("RGB") if im.mode == "P" else (im.convert("L") if im.mode == "1" else im)
    decoded = np.asarray(decoded)
    if decoded.dtype == np.uint16:  # NPYArray reads no <u2; I;16 samples go out as int32
        decoded = decoded.astype(np.int32)
    np.save(os.path.join(HERE, f"{stem}.decoded.npy"), decoded)
    rgb = T.CenterCrop(n)(T.Resize(n, interpolation=T.InterpolationMode.BICUBIC)(im)).convert("RGB")
    np.save(os.path.join(HERE, f"{stem}.rgb.npy"), np.asarray(rgb))
    preprocess = open_clip.image_transform(n, is_train=False)
    tensor = preprocess(im).numpy().astype(np.float32)
    np.save(os.path.join(HERE, f"{stem}.tensor.npy"), tensor)
    cases.append({"file": file, "size": n, "mode": im.mode, "width": im.width, "height": im.height})

# Direct Image.resize cases on noise (mixed up/down, both pass orders, RGB and RGBA premultiplied).
noise = rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)
Image.fromarray(noise).save(os.path.join(HERE, "noise_rgb.png"))
noise_rgba = rng.integers(0, 256, (29, 41, 4), dtype=np.uint8)
Image.fromarray(noise_rgba, "RGBA").save(os.path.join(HERE, "noise_rgba.png"))
resizes = []
for src, targets in [("noise_rgb.png", [(60, 20), (20, 60), (30, 25), (50, 40), (41, 15), (17, 29), (64, 12), (23, 23), (40, 8), (12, 28)]),
                     ("noise_rgba.png", [(60, 20), (20, 40), (30, 9)])]:
    im = Image.open(os.path.join(HERE, src))
    for w, h in targets:
        out = im.resize((w, h), Image.Resampling.BICUBIC)
        name = f"{src.rsplit('.', 1)[0]}.resize_{w}x{h}.npy"
        np.save(os.path.join(HERE, name), np.asarray(out))
        resizes.append({"file": src, "width": w, "height": h, "expected": name})

# torchvision resized_crop (RandomResizedCrop's pixel path) for fixed boxes (top, left, height, width).
crops = []
for src, boxes in [("rgb_down.png", [(0, 0, 50, 67), (5, 10, 40, 20), (3, 2, 20, 60), (10, 20, 32, 32), (1, 1, 45, 30), (7, 3, 9, 12)]),
                   ("rgba_semi.png", [(2, 4, 30, 40), (0, 10, 41, 15)])]:
    im = Image.open(os.path.join(HERE, src))
    for top, left, h, w in boxes:
        out = F.resized_crop(im, top, left, h, w, [32, 32], interpolation=T.InterpolationMode.BICUBIC).convert("RGB")
        name = f"{src.rsplit('.', 1)[0]}.crop_{top}_{left}_{h}_{w}.npy"
        np.save(os.path.join(HERE, name), np.asarray(out))
        crops.append({"file": src, "top": top, "left": left, "height": h, "width": w, "size": 32, "expected": name})

json.dump({"versions": {"pillow": PIL.__version__, "torchvision": torchvision.__version__, "torch": torch.__version__,
                        "open_clip": open_clip.__version__},
           "cases": cases, "resizes": resizes, "crops": crops},
          open(os.path.join(HERE, "cases.json"), "w"), indent=1)
print(len(cases), "cases,", len(resizes), "resizes,", len(crops), "crops")
