# Writes the CMYK / YCCK JPEG fixtures read by ImageDecodingTests, PreprocessTests (ImagingTests) and
# AugmentationTests (DataTests): the 4-channel JPEG variants Pillow opens in mode CMYK, and what open_clip's eval
# transform and torchvision's resized_crop make of them.
# Pinned: Pillow 13.0.0, numpy (python 3.11), imagecodecs 2026.3.6 (12-bit and lossless JPEG writer),
# libjpeg-turbo's libjpeg-dev + a C compiler for write_cmyk_jpeg.c.
# No torch: open_clip's eval transform (Resize(N, bicubic) -> CenterCrop(N) -> convert("RGB") -> ToTensor ->
# Normalize) and resized_crop are replayed with Pillow + numpy (`eval_transform`, `resized_crop`), and checked
# first against every case and crop that generate_preprocess_cases.py made with real torch/torchvision/open_clip
# (rgb.npy, tensor.npy and crop npy must be equal).
# Run: python generate_cmyk_cases.py   (from this folder)
# Outputs: the sources below, the valid JPEGs rada refuses (two_components.jpg, twelve_bit.jpg, lossless.jpg),
# cmyk_cases.json (same schema as cases.json's "cases" and "crops"), and per source:
#   <name>.decoded.npy    np.asarray(Image.open(src)): (H, W, 4) CMYK as Pillow holds it (inverted, "CMYK;I")
#   <name>.converted.npy  np.asarray(Image.open(src).convert("RGB")): (H, W, 3), Pillow's cmyk2rgb on every pixel
#   <name>.rgb.npy        Resize(N, bicubic) -> CenterCrop(N) -> convert("RGB"): (N, N, 3) uint8
#   <name>.tensor.npy     the eval transform's output (3, N, N) float32
#   <name>.crop_T_L_H_W.npy  torchvision resized_crop (training augmentation's pixels) then RGB: (32, 32, 3)
import json, os, subprocess, tempfile
import imagecodecs
import numpy as np
import PIL
from PIL import Image

assert PIL.__version__.startswith("13."), PIL.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(2026)
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # open_clip OPENAI_DATASET_MEAN
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def smooth(h, w, c, noise=12):
    """As generate_preprocess_cases.py: gradients + blobs + a little noise, a few KB as JPEG."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        v = 127 + 100 * np.sin(x / (3 + k) + y / (5 + 2 * k)) + 60 * np.cos((x - y) / (7 + k))
        planes.append(v + rng.normal(0, noise, (h, w)))
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def eval_transform(im, n):
    """open_clip 3.3 image_transform(n, is_train=False) on a PIL image, as torchvision 0.29 computes it."""
    w, h = im.size
    if w <= h:  # torchvision _compute_resized_output_size: short side n, long side int(n * long / short)
        size = (n, int(n * h / w))
    else:
        size = (int(n * w / h), n)
    if size != im.size:
        im = im.resize(size, Image.Resampling.BICUBIC)
    top, left = int(round((im.height - n) / 2.0)), int(round((im.width - n) / 2.0))  # CenterCrop
    rgb = im.crop((left, top, left + n, top + n)).convert("RGB")
    x = np.asarray(rgb).astype(np.float32).transpose(2, 0, 1) / np.float32(255)  # ToTensor
    return np.asarray(rgb), ((x - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)  # Normalize


def resized_crop(im, top, left, h, w, n):
    """torchvision 0.29 F.resized_crop(im, top, left, h, w, [n, n], BICUBIC).convert("RGB") on a PIL image."""
    im = im.crop((left, top, left + w, top + h))
    if im.size != (n, n):
        im = im.resize((n, n), Image.Resampling.BICUBIC)
    return np.asarray(im.convert("RGB"))


# 1. The replays must reproduce the torch-made fixtures exactly, or their CMYK outputs prove nothing.
torch_made = json.load(open(os.path.join(HERE, "cases.json")))
for c in torch_made["cases"]:
    stem = c["file"].rsplit(".", 1)[0]
    rgb, tensor = eval_transform(Image.open(os.path.join(HERE, c["file"])), c["size"])
    assert np.array_equal(rgb, np.load(os.path.join(HERE, f"{stem}.rgb.npy"))), c["file"]
    assert np.array_equal(tensor, np.load(os.path.join(HERE, f"{stem}.tensor.npy"))), c["file"]
for c in torch_made["crops"]:
    out = resized_crop(Image.open(os.path.join(HERE, c["file"])), c["top"], c["left"], c["height"], c["width"], c["size"])
    assert np.array_equal(out, np.load(os.path.join(HERE, c["expected"]))), c["expected"]

# 2. Sources. Pillow writes CMYK with an Adobe APP14 marker (transform 0) and inverted samples; the C helper
#    writes what Pillow cannot: CMYK without any Adobe marker (plain samples), YCCK (transform 2), arithmetic.
build = tempfile.mkdtemp()
writer = os.path.join(build, "write_cmyk_jpeg")
subprocess.run(["cc", "-O2", "-o", writer, os.path.join(HERE, "write_cmyk_jpeg.c"), "-ljpeg"], check=True)


def write_c(path, pixels, space, adobe, arith, quality):
    raw = os.path.join(build, "in.raw")
    pixels.tofile(raw)
    h, w = pixels.shape[:2]
    subprocess.run([writer, raw, str(w), str(h), space, str(adobe), str(arith), str(quality), path], check=True)


sources = []  # (file, N, Adobe transform or None)
Image.fromarray(smooth(47, 62, 4), "CMYK").save(os.path.join(HERE, "cmyk_adobe.jpg"), quality=90)  # down
sources.append(("cmyk_adobe.jpg", 32, 0))
write_c(os.path.join(HERE, "cmyk_plain.jpg"), smooth(26, 21, 4), "cmyk", 0, 0, 90)  # up, portrait
sources.append(("cmyk_plain.jpg", 32, None))
write_c(os.path.join(HERE, "ycck_adobe.jpg"), smooth(53, 40, 4), "ycck", 1, 0, 90)  # down, odd crop offset
sources.append(("ycck_adobe.jpg", 24, 2))
write_c(os.path.join(HERE, "ycck_arith.jpg"), smooth(36, 44, 4), "ycck", 1, 1, 85)  # arithmetic-coded
sources.append(("ycck_arith.jpg", 32, 2))

# A 2-component JPEG: valid, but no colour space Pillow or libjpeg knows (Pillow 13: "cannot identify image
# file", from "cannot handle 2-layer images"); ImageDecodingTests expects "unsupported" for it, never "corrupt".
write_c(os.path.join(HERE, "two_components.jpg"), smooth(8, 8, 2), "two", 0, 0, 75)
try:
    Image.open(os.path.join(HERE, "two_components.jpg")).load()
    opened = True
except OSError:
    opened = False
assert not opened, "Pillow opened two_components.jpg"
# 12-bit (Pillow refuses it as well) and lossless (SOF3: Pillow 13's libjpeg-turbo 3 opens it, Debian 12's
# libjpeg-turbo 2.1 under rada cannot, a difference the README states).
open(os.path.join(HERE, "twelve_bit.jpg"), "wb").write(
    imagecodecs.jpeg8_encode((smooth(8, 8, 1)[..., 0].astype(np.uint16) * 16), bitspersample=12))
try:
    Image.open(os.path.join(HERE, "twelve_bit.jpg")).load()
    opened = True
except OSError:
    opened = False
assert not opened, "Pillow opened twelve_bit.jpg"
lossless = smooth(8, 8, 3)
open(os.path.join(HERE, "lossless.jpg"), "wb").write(imagecodecs.jpeg8_encode(lossless, lossless=True))
assert np.array_equal(np.asarray(Image.open(os.path.join(HERE, "lossless.jpg"))), lossless)

cases = []
for file, n, transform in sources:
    stem = file.rsplit(".", 1)[0]
    im = Image.open(os.path.join(HERE, file)); im.load()
    assert im.mode == "CMYK", (file, im.mode)
    assert im.info.get("adobe_transform") == transform, (file, im.info)
    np.save(os.path.join(HERE, f"{stem}.decoded.npy"), np.asarray(im))
    np.save(os.path.join(HERE, f"{stem}.converted.npy"), np.asarray(im.convert("RGB")))
    rgb, tensor = eval_transform(im, n)
    np.save(os.path.join(HERE, f"{stem}.rgb.npy"), rgb)
    np.save(os.path.join(HERE, f"{stem}.tensor.npy"), tensor)
    cases.append({"file": file, "size": n, "mode": im.mode, "width": im.width, "height": im.height,
                  "adobe_transform": transform})

# resized_crop boxes (top, left, height, width) for the training augmentation's pixels (AugmentationTests).
crops = []
for src, boxes in [("cmyk_adobe.jpg", [(2, 5, 40, 30), (0, 0, 47, 62)]), ("ycck_adobe.jpg", [(10, 3, 20, 35)])]:
    im = Image.open(os.path.join(HERE, src))
    for top, left, h, w in boxes:
        name = f"{src.rsplit('.', 1)[0]}.crop_{top}_{left}_{h}_{w}.npy"
        np.save(os.path.join(HERE, name), resized_crop(im, top, left, h, w, 32))
        crops.append({"file": src, "top": top, "left": left, "height": h, "width": w, "size": 32, "expected": name})

json.dump({"versions": {"pillow": PIL.__version__, "numpy": np.__version__,
                        "transform": "open_clip eval transform and torchvision resized_crop replayed with Pillow + "
                                     "numpy (see header)"},
           "cases": cases, "crops": crops}, open(os.path.join(HERE, "cmyk_cases.json"), "w"), indent=1)
print(len(cases), "CMYK/YCCK cases,", len(crops), "crops")
