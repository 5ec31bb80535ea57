"""End to end: a PyTorch checkpoint of the reference U-Net goes through
tools/convert_torch_checkpoint.py and `ddpm_eval eps`, and the C++ prediction must match
PyTorch's forward pass (relative error <= 1e-5). Bad checkpoints and configs given to the
converter must be refused with exit status 2 and one line, leaving the output alone.

usage: test_convert_eps.py --ddpm-eval PATH --workdir DIR
"""
import os
import sys

import h5py
import numpy as np
import torch
import yaml

import e2e_util as u

EPS_TOL = 1e-5
N_IMAGES, EVAL_BATCH = 5, 2  # more images than one batch: ddpm_eval's batching is exercised


def convert(ckpt, out, config):
    return [sys.executable, u.CONVERTER, ckpt, out, "--config", config]


def read_params(path):
    with h5py.File(path, "r") as f:
        return {name: ds[()] for name, ds in f["params"].items()}, {k: f["params"][k].dtype for k in f["params"]}


def check_weights_file(path, net, model):
    with h5py.File(path, "r") as f:
        u.check(f.attrs["format"] == "ddpm-weights", f"{path}: format attribute {f.attrs['format']!r}")
        version = f.attrs["format_version"]
        u.check(version == 1 and version.dtype == np.int64, f"{path}: format_version {version!r} ({version.dtype})")
        u.check(yaml.safe_load(f.attrs["model_config"]) == model, f"{path}: model_config {f.attrs['model_config']!r}")
    params, dtypes = read_params(path)
    state = net.state_dict()
    u.check(sorted(params) == sorted(state), f"{path}: params differ from the state_dict's names")
    for name, value in state.items():
        u.check(dtypes[name] == np.float32, f"{path}: {name} is {dtypes[name]}, not float32")
        u.check(params[name].shape == tuple(value.shape), f"{path}: {name} has shape {params[name].shape}")
        u.check(np.array_equal(params[name], value.numpy()), f"{path}: {name} differs from the checkpoint")
    u.check(not os.path.exists(path + ".tmp"), f"{path}.tmp was left behind")
    print(f"ok   {path}: {len(params)} float32 tensors equal to the checkpoint")


def check_eps_matches_pytorch(ddpm_eval, work, weights, net, model):
    in_path, out_path = os.path.join(work, "in.h5"), os.path.join(work, "eps.h5")
    x, t = u.write_eps_input(in_path, model, N_IMAGES, seed=3)
    u.expect_ok([ddpm_eval, "eps", "--checkpoint", weights, "--in", in_path, "--out", out_path,
                 "--batch", str(EVAL_BATCH)])
    with h5py.File(out_path, "r") as f:
        eps = f["eps"][()]
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(t)).numpy()
        # The comparison only sees a time-embedding bug if t moves the output.
        shifted = net(torch.from_numpy(x), torch.from_numpy((t + 137) % 1000)).numpy()
    u.check(eps.shape == ref.shape and eps.dtype == np.float32, f"eps has shape {eps.shape} and dtype {eps.dtype}")
    u.check(u.relative_error(shifted, ref) > 1e-3, "the test model's output hardly depends on t")
    err = u.relative_error(eps, ref)
    u.check(err <= EPS_TOL, f"ddpm_eval eps vs PyTorch: relative error {err:.3e} > {EPS_TOL}")
    print(f"ok   ddpm_eval eps vs PyTorch forward on {N_IMAGES} images: relative error {err:.3e}")


def check_refusals(work, net, model, config):
    state = net.state_dict()
    # An existing output must survive every refused conversion untouched.
    keep = os.path.join(work, "keep.h5")
    with open(keep, "wb") as f:
        f.write(b"previous output")

    def refused(ckpt, must_contain, label, cfg=config):
        u.expect_one_line_error(convert(ckpt, keep, cfg), [ckpt] + must_contain, label)
        with open(keep, "rb") as f:
            u.check(f.read() == b"previous output", f"{label}: the existing output was modified")
        u.check(not os.path.exists(keep + ".tmp"), f"{label}: {keep}.tmp was left behind")

    good = os.path.join(work, "model.ckpt")
    with open(good, "rb") as f:
        good_bytes = f.read()
    truncated = os.path.join(work, "truncated.ckpt")
    with open(truncated, "wb") as f:
        f.write(good_bytes[: len(good_bytes) // 2])
    refused(truncated, ["not a PyTorch checkpoint"], "converter: truncated checkpoint")

    corrupted = os.path.join(work, "corrupted.ckpt")
    with open(corrupted, "wb") as f:
        f.write(bytes(b ^ 0x5A for b in good_bytes[:4096]) + good_bytes[4096:])
    refused(corrupted, ["not a PyTorch checkpoint"], "converter: corrupted checkpoint")

    text = os.path.join(work, "notes.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("this is not a checkpoint\n")
    refused(text, ["not a PyTorch checkpoint"], "converter: text file")

    other = dict(model, ch_mult=[1, 1])
    mismatched = os.path.join(work, "other_arch.ckpt")
    torch.save(u.random_model(other, seed=1).state_dict(), mismatched)
    refused(mismatched, ["has shape", "expected", "is the model config right?"], "converter: other architecture")

    missing = os.path.join(work, "missing.ckpt")
    torch.save({k: v for k, v in state.items() if k != "conv_out.bias"}, missing)
    refused(missing, ["'conv_out.bias' is missing"], "converter: missing tensor")

    extra = os.path.join(work, "extra.ckpt")
    torch.save(dict(state, **{"mid.block_3.conv1.weight": torch.zeros(3)}), extra)
    refused(extra, ["unexpected tensor 'mid.block_3.conv1.weight'"], "converter: unexpected tensor")

    misshaped = os.path.join(work, "misshaped.ckpt")
    torch.save(dict(state, **{"conv_in.weight": state["conv_in.weight"].transpose(0, 1).contiguous()}), misshaped)
    refused(misshaped, ["'conv_in.weight' has shape [3, 32, 3, 3], expected [32, 3, 3, 3]"],
            "converter: mis-shaped tensor")

    bad_config = os.path.join(work, "bad_config.yaml")
    u.write_yaml_config(bad_config, dict(model, ch=48))
    u.expect_one_line_error(convert(good, keep, bad_config), [bad_config, "model.ch"], "converter: bad config")


def main():
    args = u.eval_test_args()
    work = args.workdir
    torch.set_num_threads(1)

    model = dict(u.SMALL_MODEL)
    config = os.path.join(work, "config.yaml")
    u.write_yaml_config(config, model)
    net = u.random_model(model, seed=0)
    ckpt = os.path.join(work, "model.ckpt")
    torch.save(net.state_dict(), ckpt)

    weights = os.path.join(work, "weights.h5")
    u.expect_ok(convert(ckpt, weights, config))
    check_weights_file(weights, net, model)

    # A training-script checkpoint: wrapped under 'state_dict', names prefixed by DataParallel.
    wrapped = os.path.join(work, "wrapped.ckpt")
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}, "step": 7}, wrapped)
    wrapped_weights = os.path.join(work, "wrapped.h5")
    u.expect_ok(convert(wrapped, wrapped_weights, config))
    check_weights_file(wrapped_weights, net, model)

    # The pre-1.6 torch.save format, as older checkpoints may be.
    legacy = os.path.join(work, "legacy.ckpt")
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    legacy_weights = os.path.join(work, "legacy.h5")
    u.expect_ok(convert(legacy, legacy_weights, config))
    check_weights_file(legacy_weights, net, model)

    check_eps_matches_pytorch(args.ddpm_eval, work, weights, net, model)
    check_refusals(work, net, model, config)


if __name__ == "__main__":
    u.main_wrapper(main)
