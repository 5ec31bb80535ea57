#!/usr/bin/python3
"""References for the Inception's input pipeline (src/eval/inception_input.h): uint8
images resized to 299x299 and scaled to [-1, 1] the three ways the reference evaluators
do it, each by the implementation itself or its formula:

  tf           TF1's ResizeBilinear (align_corners=False, half_pixel_centers=False) as
               its CPU kernel computes it, in float32 numpy: source = i * (in / out),
               lower = floor, upper = min(ceil, in - 1), top/bottom lerps along x then
               a lerp along y; then (x - 128) / 128
  torch        pytorch-fid: torch's F.interpolate(x / 255, bilinear,
               align_corners=False), then 2x - 1
  pil-bicubic  clean-fid's "clean" mode as cleanfid/resize.py and inception_torchscript.py
               run it: make_resizer("PIL", quantize_after=False, "bicubic") (each channel
               a float 'F' image, PIL's bicubic resize, clipped to [0, 255], the channels
               concatenated as float32), then InceptionV3W.forward's x1 = x - 128,
               x2 = x1 / 128 on the torch tensor

    inception_input_ref.py --out FILE.h5

writes, for each test image k: images/k (uint8 [H, W, C]) and tf/k, torch/k,
pil-bicubic/k (float32 [299, 299, 3]). Grey images (C 1) are repeated to three channels.
Needs Debian's python3-torch, python3-numpy, python3-h5py and python3-pil.
"""
import argparse

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OUT = 299

# (name, H, W, C): upscaling, downscaling, each axis its own way (grey), identity.
IMAGES = [("up_32x32", 32, 32, 3), ("down_384x512", 384, 512, 3), ("grey_400x200", 400, 200, 1),
          ("same_299x299", 299, 299, 3)]


def rgb(img):
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def tf_axis(n_in):
    scale = np.float32(n_in) / np.float32(OUT)
    src = np.arange(OUT, dtype=np.float32) * scale
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), n_in - 1)
    return lower, upper, (src - floor).astype(np.float32)


def tf_resize(img):
    x = rgb(img).astype(np.float32)
    yl, yu, ly = tf_axis(x.shape[0])
    xl, xu, lx = tf_axis(x.shape[1])
    lx, ly = lx[None, :, None], ly[:, None, None]
    top_left, top_right = x[yl][:, xl], x[yl][:, xu]
    bottom_left, bottom_right = x[yu][:, xl], x[yu][:, xu]
    top = top_left + (top_right - top_left) * lx
    bottom = bottom_left + (bottom_right - bottom_left) * lx
    v = top + (bottom - top) * ly
    return ((v - np.float32(128)) / np.float32(128)).astype(np.float32)


def torch_resize(img):
    x = torch.from_numpy(np.ascontiguousarray(rgb(img))).permute(2, 0, 1)[None].float() / 255
    y = F.interpolate(x, size=(OUT, OUT), mode="bilinear", align_corners=False)
    return (2 * y - 1)[0].permute(1, 2, 0).contiguous().numpy()


def pil_bicubic_resize(img):
    def resize_single_channel(x_np):
        im = Image.fromarray(x_np.astype(np.float32), mode="F")
        im = im.resize((OUT, OUT), resample=Image.BICUBIC)
        return np.asarray(im).clip(0, 255).reshape(OUT, OUT, 1)
    x = rgb(img)  # clean-fid reads images with .convert('RGB')
    resized = np.concatenate([resize_single_channel(x[:, :, c]) for c in range(3)], axis=2).astype(np.float32)
    t = torch.from_numpy(resized)
    x1 = t - 128
    x2 = x1 / 128
    return x2.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="HDF5 file to write")
    args = parser.parse_args()
    rng = np.random.default_rng(299)
    with h5py.File(args.out, "w") as f:
        for name, H, W, C in IMAGES:
            img = rng.integers(0, 256, size=(H, W, C), dtype=np.uint8)
            f.create_dataset(f"images/{name}", data=img)
            for mode, resize in (("tf", tf_resize), ("torch", torch_resize), ("pil-bicubic", pil_bicubic_resize)):
                f.create_dataset(f"{mode}/{name}", data=resize(img))
    print(f"inception_input_ref: wrote {args.out}: {len(IMAGES)} images in 3 modes")


if __name__ == "__main__":
    main()
