#!/usr/bin/python3
"""Converts a PyTorch DDPM checkpoint (a state_dict in the pytorch_diffusion naming, such
as the released diffusion_cifar10_model/model-790000.ckpt or its ema_ twin) into a ddpm
weights file that ddpm_eval, ddpm_sample and ddpm_train read.

The output (HDF5, see src/core/weights_io.h) has root attributes format = "ddpm-weights",
format_version = 1 and model_config (YAML), and group `params` with one float32 dataset
per parameter in its PyTorch shape. Every name and shape is checked against the
reference architecture (tests/reference/unet_ref.py) for the given model config; any
mismatch, a file that is not a torch checkpoint or a bad config is refused with one line
and exit status 2, and nothing is written. The output is written to OUT.tmp, synced and
renamed, so an existing OUT is replaced only by a complete file.

Needs only Debian's python3-torch, python3-h5py, python3-numpy and python3-yaml.
"""
import argparse
import math
import os
import sys

EXIT_BAD_INPUT = 2
PROG = "convert_torch_checkpoint"

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests", "reference"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import ddpm_h5  # noqa: E402  (tools/ddpm_h5.py)
import unet_ref  # noqa: E402

WEIGHTS_FORMAT = "ddpm-weights"
WEIGHTS_FORMAT_VERSION = 1

# The `model:` keys of the C++ config, with its defaults (the paper's CIFAR10 model).
MODEL_DEFAULTS = dict(resolution=32, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 2, 2], num_res_blocks=2,
                      attn_resolutions=[16], dropout=0.1, resamp_with_conv=True)
WRAPPER_KEYS = ("state_dict", "model")  # where training scripts nest the state_dict


class BadInput(Exception):
    """Bad user input: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(message)


# --- model config --------------------------------------------------------------------

def _int(cfg, key, lo, hi):
    v = cfg[key]
    if isinstance(v, float) and v.is_integer():  # 1e4 or 128.0, as the C++ parser accepts
        v = cfg[key] = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise BadInput(f"model.{key}: expected an integer in [{lo}, {hi}], got {v!r}")
    return v


def _int_list(cfg, key, lo, hi, allow_empty):
    v = cfg[key]
    if not isinstance(v, list) or (not v and not allow_empty) or any(
            isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v):
        raise BadInput(f"model.{key}: expected a list of integers in [{lo}, {hi}], got {v!r}")
    return list(v)


def validate_model_config(raw, source):
    """Fills defaults and checks the keys as src/core/config.cpp does; BadInput naming the key."""
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: the model section must be a mapping")
    unknown = sorted(set(raw) - set(MODEL_DEFAULTS))
    if unknown:
        raise BadInput(f"{source}: unknown key model.{unknown[0]} (known: {', '.join(MODEL_DEFAULTS)})")
    cfg = dict(MODEL_DEFAULTS, **raw)
    try:
        _int(cfg, "resolution", 1, 4096)
        _int(cfg, "in_channels", 1, 64)
        _int(cfg, "out_ch", 1, 64)
        if _int(cfg, "ch", 32, 4096) % 32:
            raise BadInput(f"model.ch: must be a multiple of 32 (GroupNorm has 32 groups), got {cfg['ch']}")
        mult = _int_list(cfg, "ch_mult", 1, 64, allow_empty=False)
        _int(cfg, "num_res_blocks", 0, 64)
        attn = _int_list(cfg, "attn_resolutions", 1, 4096, allow_empty=True)
        dropout = cfg["dropout"]
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise BadInput(f"model.dropout: expected a number in [0, 1), got {dropout!r}")
        cfg["dropout"] = float(dropout)
        if not isinstance(cfg["resamp_with_conv"], bool):
            raise BadInput(f"model.resamp_with_conv: expected true or false, got {cfg['resamp_with_conv']!r}")
        levels = [cfg["resolution"] >> i for i in range(len(mult))]
        if cfg["resolution"] % (1 << (len(mult) - 1)):
            raise BadInput(f"model.resolution: {cfg['resolution']} is not divisible by 2^{len(mult) - 1}")
        for r in attn:
            if r not in levels:
                raise BadInput(f"model.attn_resolutions: {r} is not a resolution of this U-Net {levels}")
    except BadInput as e:
        raise BadInput(f"{source}: {e}") from None
    return cfg


def load_model_config(args):
    if args.preset:
        return validate_model_config(dict(unet_ref.PRESETS[args.preset]), f"preset {args.preset}")
    path = args.config
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise BadInput(f"{path}: cannot read the config ({e.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadInput(f"{path}: not valid YAML ({reason})") from None
    if not isinstance(doc, dict) or "model" not in doc:
        raise BadInput(f"{path}: no model: section")
    return validate_model_config(doc["model"], path)


def model_config_yaml(cfg):
    return yaml.safe_dump({k: cfg[k] for k in MODEL_DEFAULTS}, sort_keys=False, default_flow_style=None)


def expected_shapes(cfg):
    """Parameter names and shapes of the reference architecture for cfg."""
    net = unet_ref.from_config(cfg)
    return {name: tuple(p.shape) for name, p in net.state_dict().items()}


# --- checkpoint ----------------------------------------------------------------------

def describe_load_error(e):
    text = " ".join(str(e).split())
    # torch's weights-only unpickler puts the actual problem after this marker.
    marker = "WeightsUnpickler error: "
    if marker in text:
        detail = text.split(marker, 1)[1]
        if detail.startswith("Unsupported class "):
            return (f"holds a Python object of class {detail[len('Unsupported class '):]}, which is refused "
                    "(only tensors and plain containers are loaded, so no code from the file runs)")
        return f"not a PyTorch checkpoint (damaged pickle: {detail[:120]})"
    return f"not a PyTorch checkpoint (torch.load: {(text or type(e).__name__)[:120]})"


def load_state_dict(path):
    if not os.path.isfile(path):
        raise BadInput(f"{path}: no such file")
    # torch.save writes a zip archive (torch >= 1.6) or a binary pickle (older versions).
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})") from None
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise BadInput(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        # weights_only: tensors and plain containers only, no code from the file runs.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for foreign or damaged files
        raise BadInput(f"{path}: {describe_load_error(e)}") from None
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise BadInput(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise BadInput(f"{path}: not a state_dict (key {name!r} is not a name)")
        if not torch.is_tensor(value):
            raise BadInput(f"{path}: entry '{name}' is not a tensor ({type(value).__name__})")
        # Checkpoints saved from DataParallel / DistributedDataParallel prefix every name.
        state[name[len("module."):] if name.startswith("module.") else name] = value
    return state


def check_against(state, shapes, path, hint="is the model config right?"):
    """BadInput naming the first problem, in the model's parameter order, and counting
    all of them (then the hint), if state is not exactly the parameters of the model."""
    problems, counts = [], {"missing": 0, "unexpected": 0, "mis-shaped": 0, "bad-valued": 0}

    def problem(kind, text):
        counts[kind] += 1
        problems.append(text)

    for n, want in shapes.items():
        t = state.get(n)
        if t is None:
            problem("missing", f"tensor '{n}' is missing")
        elif tuple(t.shape) != want:
            problem("mis-shaped", f"tensor '{n}' has shape {list(t.shape)}, expected {list(want)}")
        elif not t.is_floating_point():
            problem("bad-valued", f"tensor '{n}' has dtype {str(t.dtype).replace('torch.', '')}, expected floating point")
        elif not bool(torch.isfinite(t).all()):
            problem("bad-valued", f"tensor '{n}' contains NaN or Inf")
    for n in state:
        if n not in shapes:
            problem("unexpected", f"unexpected tensor '{n}' (not a parameter of this model)")
    if problems:
        summary = ""
        if len(problems) > 1:
            summary = " (%d problems: %s; %s)" % (
                len(problems), ", ".join(f"{v} {k}" for k, v in counts.items() if v), hint)
        raise BadInput(f"{path}: {problems[0]}{summary}")


# --- output --------------------------------------------------------------------------

def write_weights(out_path, cfg, state, shapes, source):
    tmp = out_path + ".tmp"
    try:
        # The format ddpm's own writers use (src/core/h5.h): HDF5 1.10, whose metadata
        # is checksummed, with links and attributes kept in the object headers.
        with ddpm_h5.create_file(tmp) as f:
            f.attrs["format"] = WEIGHTS_FORMAT
            f.attrs["format_version"] = np.int64(WEIGHTS_FORMAT_VERSION)
            f.attrs["model_config"] = model_config_yaml(cfg)
            f.attrs["source"] = os.path.basename(source)
            params = ddpm_h5.create_group(f, "params")
            for name in shapes:
                data = state[name].detach().to(torch.float32).contiguous().numpy()
                params.create_dataset(name, data=data, dtype=np.float32)
        ddpm_h5.commit(tmp, out_path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        reason = os.strerror(e.errno) if e.errno else " ".join(str(e).split())[:120]
        raise BadInput(f"{out_path}: cannot write ({reason})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv):
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                    epilog="Example: convert_torch_checkpoint.py ema_model-790000.ckpt cifar10-ema.h5 --preset cifar10")
    parser.add_argument("checkpoint", metavar="IN.ckpt", help="state_dict saved with torch.save (optionally "
                        "wrapped under 'state_dict' or 'model'; a 'module.' prefix is removed)")
    parser.add_argument("output", metavar="OUT.h5", help="ddpm weights file to write")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(unet_ref.PRESETS), help="model config of a released model")
    which.add_argument("--config", metavar="FILE", help="YAML config whose model: section describes the model")
    args = parser.parse_args(argv)

    # Refuse an unwritable destination before the (possibly long) loading.
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise BadInput(f"{args.output}: the directory {out_dir} does not exist")
    if not os.access(out_dir, os.W_OK):
        raise BadInput(f"{args.output}: the directory {out_dir} is not writable")
    cfg = load_model_config(args)
    shapes = expected_shapes(cfg)
    state = load_state_dict(args.checkpoint)
    check_against(state, shapes, args.checkpoint)
    write_weights(args.output, cfg, state, shapes, args.checkpoint)
    count = sum(math.prod(s) for s in shapes.values())
    print(f"{PROG}: wrote {args.output}: {len(shapes)} tensors, {count} parameters")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BadInput as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
