"""Shared pieces of the end-to-end tests: running a command, the one-line error policy
(exit status 2, exactly one line on stderr), the small reference model and its inputs."""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_torch_checkpoint.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))
import unet_ref  # noqa: E402

EXIT_BAD_INPUT = 2

# Small but complete: attention at 8x8 (down, middle, up), conv resampling, nin_shortcut,
# and a 64-channel level, where a GroupNorm group holds two channels so the time
# embedding changes the output (with 32 channels GroupNorm cancels it).
SMALL_MODEL = dict(resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1,
                   attn_resolutions=[8], dropout=0.1, resamp_with_conv=True)


class Failure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def run(cmd, timeout=300):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def expect_ok(cmd, timeout=300):
    r = run(cmd, timeout=timeout)
    check(r.returncode == 0, f"{' '.join(cmd)} failed with status {r.returncode}:\n{r.stderr}")
    return r


def expect_one_line_error(cmd, must_contain, label):
    """The command must exit with status 2 and write exactly one line to stderr that
    contains every string of must_contain. Returns the line."""
    r = run(cmd)
    lines = r.stderr.splitlines()
    check(r.returncode == EXIT_BAD_INPUT,
          f"{label}: exit status {r.returncode}, expected {EXIT_BAD_INPUT}; stderr:\n{r.stderr}")
    check(len(lines) == 1 and lines[0].strip(), f"{label}: expected one line on stderr, got {len(lines)}:\n{r.stderr}")
    for s in must_contain:
        check(s in lines[0], f"{label}: the error line does not mention {s!r}: {lines[0]}")
    print(f"ok   {label}: {lines[0]}")
    return lines[0]


def write_png(path, image):
    """Minimal RGB PNG writer (zlib + struct), so the test needs no imaging package."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_images(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for i in range(n):
        colour = rng.uniform(0.2, 1.0, 3)
        field = [np.sin((xs * (i + 1) + ys) * np.pi) * 0.5 + 0.5, xs, ys][i % 3]
        rgb = np.stack([field * colour[0], (1 - field) * colour[1], field * colour[2]], -1)
        images.append((rgb * 255).round().astype(np.uint8))
    return images


def write_yaml_config(path, model):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"model": model}, f, sort_keys=False, default_flow_style=None)


def random_model(model, seed):
    """The reference U-Net with PyTorch's default init, GroupNorm affine parameters
    moved off 1 / 0 so that every parameter matters."""
    torch.manual_seed(seed)
    net = unet_ref.from_config(model).float()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def write_eps_input(path, model, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, model["in_channels"], model["resolution"], model["resolution"]), dtype=np.float32)
    t = rng.integers(0, 1000, size=n, dtype=np.int64)
    t[0], t[-1] = 0, 999  # both ends of the schedule
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("t", data=t)
    return x, t


def random_inception_weights(work, seed=7, fc_bias_scale=None, name="inception"):
    """The FID Inception of tests/reference/inception_ref.py with random weights (BN
    statistics calibrated), saved as pytorch-fid's state_dict and converted by
    tools/convert_inception.py to WORK/NAME.h5; fc_bias_scale replaces the classifier's
    small bias by one of that scale. Returns (the torch network, the weights file)."""
    import inception_ref
    net = inception_ref.FidInception().eval()
    inception_ref.random_weights(net, seed=seed)
    if fc_bias_scale is not None:
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            net.fc.bias.copy_(fc_bias_scale * torch.randn(net.fc.bias.shape, generator=g))
    pth, weights = os.path.join(work, f"{name}.pth"), os.path.join(work, f"{name}.h5")
    torch.save(inception_ref.pytorch_fid_state_dict(net), pth)
    expect_ok([sys.executable, os.path.join(SOURCE_DIR, "tools", "convert_inception.py"), pth, weights])
    return net, weights


def relative_error(got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def fid_value(result, weights="other Inception weights"):
    """The distance of a `ddpm_eval fid` run: its last line must be 'FID: <value> (resize
    <mode>, <which weights>)', the weights as given (the tests' random weights are not
    the published ones)."""
    lines = result.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    m = re.fullmatch(r"FID: (\S+) \(resize (tf|torch|pil-bicubic), (.*)\)", last)
    check(m is not None, f"the last line of ddpm_eval fid, {last!r}, is not 'FID: <value> (resize <mode>, <weights>)'")
    check(m.group(3).startswith(weights), f"ddpm_eval fid says {m.group(3)!r}, not {weights!r}")
    return float(m.group(1))


def eval_test_args():
    """--ddpm-eval and --workdir as CMake passes them; the workdir comes back absolute
    and empty."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ddpm-eval", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return args


def main_wrapper(body):
    try:
        body()
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")
