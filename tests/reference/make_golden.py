"""Writes tests/reference/golden_unet.h5, the PyTorch side of the golden test
(tests/unit/test_golden.cpp).

For each small config it builds the reference U-Net (unet_ref.py), sets the golden
weights (philox.py: a formula shared with the C++ test, so no weights are stored), runs
the forward pass on stored inputs and the backward pass of
L_simple = mean((noise - eps_theta(x, t))^2), and stores per config group:
  attribute model_config   YAML text with the keys of the C++ `model:` section
  x      float32 [N, C, H, W]    t      int64 [N]    noise  float32 [N, C, H, W]
  eps    float32 [N, C, H, W]    loss   float64 scalar
  grads/<param name>  float32, PyTorch shape, for every parameter
  weights_probe/<param name>  a few golden tensors, so the C++ test can tell "the
                              golden weights differ" apart from "the model differs"

Rerunnable: the output depends only on this script, unet_ref.py and philox.py (one
thread, deterministic algorithms, no timestamps in the file).

`--set wide` writes configs with 64- and 128-channel levels instead (groups c and d), too
big to commit: the e2e test golden_unet_wide generates them in the build tree. With ch
= 32 every GroupNorm group is one channel and the timestep-embedding gradients of the
committed configs are zero analytically; the wide configs check them against PyTorch.

usage: /usr/bin/python3 tests/reference/make_golden.py [--set committed|wide] [--out PATH]
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import philox  # noqa: E402
import unet_ref  # noqa: E402

MODEL_KEYS = ["resolution", "in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks", "attn_resolutions",
              "dropout", "resamp_with_conv"]

# Sizes chosen so that every gradient fits in a committed file under 2 MB.
CONFIGS = {
    # conv resampling, attention in the down and up paths at 4x4, nin_shortcut in the up path
    "a": dict(model=dict(resolution=8, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1], num_res_blocks=1,
                         attn_resolutions=[4], dropout=0.0, resamp_with_conv=True),
              t=[3, 999], input_seed=1),
    # no res blocks on the way down, average pool / plain nearest upsample, attention at 8x8
    "b": dict(model=dict(resolution=8, in_channels=1, out_ch=1, ch=32, ch_mult=[1, 1], num_res_blocks=0,
                         attn_resolutions=[8], dropout=0.0, resamp_with_conv=False),
              t=[0, 500, 999], input_seed=2),
}

# Not committed (about 12 MB): 2 and 4 channels per GroupNorm group, so the timestep
# embedding reaches the output, and the shapes of a cifar10-like model at 16x16.
WIDE_CONFIGS = {
    # conv resampling, two res blocks per level, nin_shortcut on both paths, attention at 8x8
    "c": dict(model=dict(resolution=16, in_channels=3, out_ch=3, ch=64, ch_mult=[1, 2], num_res_blocks=2,
                         attn_resolutions=[8], dropout=0.0, resamp_with_conv=True),
              t=[1, 250, 998], input_seed=3),
    # three levels with average pool / plain nearest upsample, attention at 4x4
    "d": dict(model=dict(resolution=8, in_channels=1, out_ch=1, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1,
                         attn_resolutions=[4], dropout=0.0, resamp_with_conv=False),
              t=[0, 999], input_seed=4),
}

PROBE_TENSORS = ["conv_in.weight", "temb.dense.0.bias", "norm_out.weight", "mid.attn_1.q.weight"]


def model_config_yaml(model):
    return yaml.safe_dump({k: model[k] for k in MODEL_KEYS}, sort_keys=False, default_flow_style=None)


def set_golden_weights(net):
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(philox.golden_tensor(name, tuple(p.shape))))


def run_config(spec):
    model = spec["model"]
    net = unet_ref.from_config(model).float()
    set_golden_weights(net)
    net.eval()  # dropout is 0 anyway; eval keeps it off whatever the config says

    n = len(spec["t"])
    shape = (n, model["in_channels"], model["resolution"], model["resolution"])
    rng = np.random.default_rng(spec["input_seed"])
    x = rng.standard_normal(shape, dtype=np.float32)
    out_shape = (n, model["out_ch"], model["resolution"], model["resolution"])
    noise = rng.standard_normal(out_shape, dtype=np.float32)
    t = np.asarray(spec["t"], dtype=np.int64)

    net.zero_grad(set_to_none=False)
    eps = net(torch.from_numpy(x), torch.from_numpy(t))
    loss = torch.mean((torch.from_numpy(noise) - eps) ** 2)
    loss.backward()
    grads = {name: p.grad.detach().numpy().astype(np.float32) for name, p in net.named_parameters()}
    return dict(x=x, t=t, noise=noise, eps=eps.detach().numpy().astype(np.float32), loss=float(loss.item()),
                grads=grads, params={name: tuple(p.shape) for name, p in net.named_parameters()})


def write_file(path, configs, results):
    tmp = path + ".tmp"
    # track_order off and no timestamps: the same inputs give the same bytes.
    with h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as f:
        f.attrs["generator"] = "tests/reference/make_golden.py"
        f.attrs["golden_seed"] = np.int64(philox.GOLDEN_SEED)
        for key, res in results.items():
            g = f.create_group(key)
            g.attrs["model_config"] = model_config_yaml(configs[key]["model"])
            for name in ["x", "t", "noise", "eps"]:
                g.create_dataset(name, data=res[name], track_times=False)
            g.create_dataset("loss", data=np.float64(res["loss"]), track_times=False)
            grads = g.create_group("grads")
            for name, value in res["grads"].items():
                grads.create_dataset(name, data=value, track_times=False)
            probes = g.create_group("weights_probe")
            for name in PROBE_TENSORS:
                probes.create_dataset(name, data=philox.golden_tensor(name, res["params"][name]), track_times=False)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=["committed", "wide"], default="committed",
                        help="committed: configs a and b (the committed file); wide: configs c and d")
    parser.add_argument("--out", help="output file (default for --set committed: tests/reference/golden_unet.h5)")
    args = parser.parse_args()
    configs = CONFIGS if args.set == "committed" else WIDE_CONFIGS
    if args.out is None:
        if args.set != "committed":
            parser.error("--set wide needs --out (the wide file is not committed)")
        args.out = os.path.join(HERE, "golden_unet.h5")

    philox.check_known_answers()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    results = {}
    for key, spec in configs.items():
        res = run_config(spec)
        results[key] = res
        nparams = sum(int(np.prod(s)) for s in res["params"].values())
        print("config %s: %d tensors, %d parameters, loss %.9g, |eps| %.6g" % (
            key, len(res["grads"]), nparams, res["loss"], float(np.linalg.norm(res["eps"]))))
    write_file(args.out, configs, results)
    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))


if __name__ == "__main__":
    main()
