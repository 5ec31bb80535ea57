"""End to end: `ddpm_eval eps` given a bad weights file (missing tensor, unexpected tensor,
mis-shaped tensor, float64 tensor, no model config, truncated file, not HDF5 at all, the
pre-1.10 HDF5 format, a group in dense storage) must exit with status 2 and print
exactly one line naming the file and the problem, and write no output. The valid file
the bad ones are made from must work, so each refusal is due to its one defect; and
tools/rewrite_hdf5.py turns the old-layout files into ones that give the same eps.

usage: test_eval_bad_weights.py --ddpm-eval PATH --workdir DIR
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

import e2e_util as u

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "tools")
sys.path.insert(0, TOOLS)
import ddpm_h5  # noqa: E402

# The smallest model with every kind of tensor; the weights' values do not matter here.
MODEL = dict(resolution=8, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4],
             dropout=0.0, resamp_with_conv=True)


def write_valid_weights(path, layout="ddpm"):
    """A weights file as the converter writes it (layout "ddpm": tools/ddpm_h5.py), or as
    plain h5py writes it ("old": the pre-1.10 format; "dense": the 1.10 format with the
    parameter group in dense storage), which ddpm refuses."""
    import yaml
    net = u.random_model(MODEL, seed=0)
    if layout == "ddpm":
        f = ddpm_h5.create_file(path)
    else:
        f = h5py.File(path, "w", libver=("v110", "latest") if layout == "dense" else "earliest")
    with f:
        f.attrs["format"] = "ddpm-weights"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["model_config"] = yaml.safe_dump(MODEL, sort_keys=False, default_flow_style=None)
        g = ddpm_h5.create_group(f, "params") if layout == "ddpm" else f.create_group("params")
        for name, value in net.state_dict().items():
            g.create_dataset(name, data=value.numpy().astype(np.float32))


def variant(base, path, edit):
    shutil.copyfile(base, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


def main():
    args = u.eval_test_args()
    work = args.workdir

    base = os.path.join(work, "valid.h5")
    write_valid_weights(base)
    in_path, out_path = os.path.join(work, "in.h5"), os.path.join(work, "eps.h5")
    u.write_eps_input(in_path, MODEL, 2, seed=1)

    def eps_cmd(weights):
        return [args.ddpm_eval, "eps", "--checkpoint", weights, "--in", in_path, "--out", out_path]

    u.expect_ok(eps_cmd(base))
    u.check(os.path.isfile(out_path), "the valid weights file produced no output")
    os.unlink(out_path)
    print("ok   the valid weights file is accepted")

    def p(name):
        return os.path.join(work, name)

    conv_in = "params/conv_in.weight"
    cases = [
        ("missing tensor", variant(base, p("missing.h5"), lambda f: f.__delitem__("params/conv_out.bias")),
         ["'params/conv_out.bias'", "missing"]),
        ("unexpected tensor", variant(base, p("extra.h5"), lambda f: f.create_dataset(
            "params/mid.block_3.conv1.weight", data=np.zeros(3, np.float32))),
         ["'params/mid.block_3.conv1.weight'", "unexpected"]),
        ("mis-shaped tensor", variant(base, p("misshaped.h5"), lambda f: replace(
            f, conv_in, np.ascontiguousarray(f[conv_in][()].transpose(1, 0, 2, 3)))),
         [f"'{conv_in}'", "shape [3, 32, 3, 3]", "expected [32, 3, 3, 3]"]),
        ("float64 tensor", variant(base, p("float64.h5"), lambda f: replace(
            f, "params/norm_out.weight", f["params/norm_out.weight"][()].astype(np.float64))),
         ["'params/norm_out.weight'", "float64", "expected float32"]),
        ("no model config", variant(base, p("no_config.h5"), lambda f: f.attrs.__delitem__("model_config")),
         ["model_config"]),
    ]
    with open(base, "rb") as f:
        data = f.read()
    truncated = p("truncated.h5")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) * 3 // 5])
    cases.append(("truncated file", truncated, ["truncated"]))
    not_hdf5 = p("weights.txt")
    with open(not_hdf5, "w", encoding="utf-8") as f:
        f.write("these are not weights\n" * 100)
    cases.append(("not an HDF5 file", not_hdf5, ["not an HDF5 file"]))

    old, dense = p("old_format.h5"), p("dense.h5")
    write_valid_weights(old, "old")
    write_valid_weights(dense, "dense")
    cases.append(("pre-1.10 HDF5 format", old, ["superblock version 0", "tools/rewrite_hdf5.py"]))
    cases.append(("dense storage", dense, ["'params'", "dense storage", "tools/rewrite_hdf5.py"]))

    for label, path, must_contain in cases:
        u.expect_one_line_error(eps_cmd(path), [path] + must_contain, f"ddpm_eval eps: {label}")
        u.check(not os.path.exists(out_path) and not os.path.exists(out_path + ".tmp"),
                f"{label}: an output was written")

    # The old layouts, rewritten, give the valid file's eps bit for bit.
    u.expect_ok(eps_cmd(base))
    with h5py.File(out_path, "r") as f:
        want = f["eps"][()]
    for path in (old, dense):
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "rewrite_hdf5.py"), path], capture_output=True, text=True)
        u.check(r.returncode == 0, f"rewrite_hdf5.py {path}: status {r.returncode}: {r.stderr}")
        os.unlink(out_path)
        u.expect_ok(eps_cmd(path))
        with h5py.File(out_path, "r") as f:
            u.check(np.array_equal(f["eps"][()], want), f"{path}: rewritten, gives another eps")
    print("ok   tools/rewrite_hdf5.py makes both old layouts readable, with the same eps")


if __name__ == "__main__":
    u.main_wrapper(main)
