#!/usr/bin/python3
"""Converts pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth, the
2015-12-05 TF Inception graph ported to PyTorch) into the HDF5 file that ddpm's
evaluation network reads (src/eval/inception.h).

    convert_inception.py IN.pth OUT.h5

The input is a state_dict with pytorch-fid's key names (tests/reference/inception_ref.py
has the same modules): each convolution unit as `<unit>.conv.weight` and its BatchNorm
as `<unit>.bn.{weight,bias,running_mean,running_var}`, then `fc.weight`, `fc.bias`. Each
BatchNorm (eps 1e-3) is folded into its convolution in float64:

    s = bn.weight / sqrt(bn.running_var + 1e-3)
    <unit>.conv.weight = conv.weight * s (per output channel)
    <unit>.conv.bias   = bn.bias - bn.running_mean * s

The output has root attributes format = "ddpm-inception-weights", format_version = 1,
source, source_sha256 and bn_eps, and group `params` with one float32 dataset per tensor
(PyTorch shapes, a crc32 attribute each), in the HDF5 layout ddpm's own writers use.

The input's SHA-256 is printed, with a warning when it is not the published file's.
torchvision's ImageNet Inception v3 (1000 classes, an AuxLogits head) is refused by its
structure; so is anything else that is not exactly pytorch-fid's set of tensors. Bad
input gets one line and exit status 2, and nothing is written; OUT is replaced only by a
complete file (OUT.tmp, fsync, rename).

Needs only Debian's python3-torch, python3-h5py and python3-numpy.
"""
import hashlib
import math
import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests", "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import convert_torch_checkpoint as ckpt  # noqa: E402  (tools/: state_dict loading and checks)
import ddpm_h5  # noqa: E402  (tools/ddpm_h5.py)
import inception_ref  # noqa: E402  (tests/reference/inception_ref.py)

PROG = "convert_inception"
WEIGHTS_FORMAT = "ddpm-inception-weights"
WEIGHTS_FORMAT_VERSION = 1
BN_EPS = inception_ref.BN_EPS

# pytorch-fid's source (src/pytorch_fid/inception.py, FID_WEIGHTS_URL) names the file by
# the first 8 hex digits of its SHA-256, torch.hub's convention; the full digest is the
# one projects that pin this release file record (95,628,359 bytes).
PUBLISHED_NAME = "pt_inception-2015-12-05-6726825d.pth"
PUBLISHED_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
TORCHVISION_CLASSES = 1000


def sha256_of(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise ckpt.BadInput(f"{path}: cannot read ({e.strerror})") from None
    return digest.hexdigest()


def refuse_torchvision(state, path):
    fc = state.get("fc.weight")
    aux = any(k.startswith("AuxLogits.") for k in state)
    if aux or (fc is not None and fc.dim() == 2 and fc.shape[0] == TORCHVISION_CLASSES):
        raise ckpt.BadInput(f"{path}: this is torchvision's ImageNet Inception v3 (1000 classes, AuxLogits head), "
                            f"not pytorch-fid's FID Inception ({PUBLISHED_NAME}, 1008 classes), which FID needs")


def expected_shapes():
    """pytorch-fid's tensors and shapes, without the BatchNorm batch counters."""
    net = inception_ref.FidInception()
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def conv_units():
    return [name for name, m in inception_ref.FidInception().named_modules() if isinstance(m, inception_ref.ConvUnit)]


def fold(state, units, path):
    """The folded tensors as float32 numpy arrays, in forward order."""
    out = {}
    for u in units:
        t = {k: state[f"{u}.{k}"].detach().to(torch.float64) for k in
             ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")}
        if bool((t["bn.running_var"] < 0).any()):
            raise ckpt.BadInput(f"{path}: tensor '{u}.bn.running_var' has negative values")
        scale = t["bn.weight"] / torch.sqrt(t["bn.running_var"] + BN_EPS)
        out[f"{u}.conv.weight"] = (t["conv.weight"] * scale[:, None, None, None]).to(torch.float32).numpy()
        out[f"{u}.conv.bias"] = (t["bn.bias"] - t["bn.running_mean"] * scale).to(torch.float32).numpy()
    for k in ("fc.weight", "fc.bias"):
        out[k] = state[k].detach().to(torch.float32).contiguous().numpy()
    return out


def write_weights(out_path, tensors, source, digest):
    tmp = out_path + ".tmp"
    try:
        with ddpm_h5.create_file(tmp) as f:
            f.attrs["format"] = WEIGHTS_FORMAT
            f.attrs["format_version"] = np.int64(WEIGHTS_FORMAT_VERSION)
            f.attrs["source"] = os.path.basename(source)
            f.attrs["source_sha256"] = digest
            f.attrs["bn_eps"] = np.float64(BN_EPS)
            params = ddpm_h5.create_group(f, "params")
            for name, data in tensors.items():
                data = np.ascontiguousarray(data, dtype=np.float32)
                d = params.create_dataset(name, data=data)
                d.attrs["crc32"] = np.int64(zlib.crc32(data.tobytes()))  # as src/core/weights_io.cpp checks
        ddpm_h5.commit(tmp, out_path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        reason = os.strerror(e.errno) if e.errno else " ".join(str(e).split())[:120]
        raise ckpt.BadInput(f"{out_path}: cannot write ({reason})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv):
    parser = ckpt.Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                         epilog=f"Example: convert_inception.py {PUBLISHED_NAME} inception-2015-12-05.h5")
    parser.add_argument("weights", metavar="IN.pth", help=f"pytorch-fid's {PUBLISHED_NAME} (a state_dict)")
    parser.add_argument("output", metavar="OUT.h5", help="the weights file to write")
    args = parser.parse_args(argv)

    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise ckpt.BadInput(f"{args.output}: the directory {out_dir} does not exist")
    if not os.access(out_dir, os.W_OK):
        raise ckpt.BadInput(f"{args.output}: the directory {out_dir} is not writable")
    state = ckpt.load_state_dict(args.weights)  # refuses missing, foreign and pickled-code files
    refuse_torchvision(state, args.weights)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    ckpt.check_against(state, expected_shapes(), args.weights, hint=f"is it pytorch-fid's {PUBLISHED_NAME}?")
    units = conv_units()
    tensors = fold(state, units, args.weights)
    digest = sha256_of(args.weights)
    if digest == PUBLISHED_SHA256:
        print(f"{PROG}: {args.weights}: sha256 {digest} (pytorch-fid's published {PUBLISHED_NAME})")
    else:
        print(f"{PROG}: {args.weights}: sha256 {digest}")
        print(f"{PROG}: warning: this is not pytorch-fid's published {PUBLISHED_NAME} (sha256 {PUBLISHED_SHA256}); "
              "its FID will not be comparable with published numbers", file=sys.stderr)
    write_weights(args.output, tensors, args.weights, digest)
    count = sum(math.prod(t.shape) for t in tensors.values())
    print(f"{PROG}: wrote {args.output}: {len(units)} convolutions with BatchNorm folded (eps {BN_EPS:g}) and fc, "
          f"{len(tensors)} tensors, {count} parameters")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ckpt.BadInput as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(ckpt.EXIT_BAD_INPUT)
