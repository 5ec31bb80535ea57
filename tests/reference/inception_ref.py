#!/usr/bin/python3
"""The FID Inception (the 2015-12-05 TF graph as pytorch-fid ports it) in plain torch,
without torchvision, and the generator of test_inception's reference data.

The modules carry pytorch-fid's names, so the state_dict keys are those of its weights
file pt_inception-2015-12-05-6726825d.pth: `Conv2d_1a_3x3.conv.weight`,
`Mixed_5b.branch_pool.bn.running_var`, ..., `fc.weight`. Each convolution unit is a
bias-free convolution, a BatchNorm (eps 1e-3, running statistics) and a ReLU. The
average pools of the A, C and E_1 blocks leave the padding out of the divisor
(count_include_pad=False, as TF); the last block (E_2) has a max pool in its pool
branch. Activations are NCHW here; the outputs are written NHWC for the C++ side.

    inception_ref.py --out DIR

writes into DIR:
  inception_ref.pth        random weights, BN statistics calibrated on a fixed batch so
                           that activations stay of order one through all 94 units
  inception_ref.h5         the input batch (NHWC, [-1, 1]), its pool_3 features, logits
                           and Mixed_6d.branch1x1 map (first 7 channels, NHWC), computed
                           in float64 from the stored float32 weights; the same outputs
                           of two wrong variants (variants/avg_include_pad: every
                           average pool counts the padding; variants/avg_in_last_block:
                           an average pool in E_2) that the C++ output must be far from
  torchvision_like.pth     a few tensors shaped as torchvision's ImageNet Inception v3
                           (1000 classes, AuxLogits), which the converter must refuse

Needs Debian's python3-torch, python3-h5py and python3-numpy.
"""
import argparse
import copy
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3
NUM_CLASSES = 1008
LEARNABLE_PARAMETERS = 23_850_960  # conv weights, BN weights and biases, fc
SPATIAL_CHANNELS = 7  # sFID: the first channels of Mixed_6d.branch1x1

# The pool of each block's pool branch: TF's average pool (padding not counted), its
# PyTorch default (padding counted: the wrong variant), or a max pool.
AVG_EXCLUDE_PAD, AVG_INCLUDE_PAD, MAX = "avg", "avg_include_pad", "max"


class ConvUnit(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; pytorch-fid's BasicConv2d."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.calibrating = False

    def forward(self, x):
        y = self.conv(x)
        if self.calibrating:
            calibrate(self.bn, y)
        return F.relu(self.bn(y))


def calibrate(bn, y):
    """Running statistics near those of y (over N, H, W), so that the normalised output
    is of order one; a little off, so that the fold must use them and not batch ones."""
    with torch.no_grad():
        mean = y.mean(dim=(0, 2, 3))
        var = y.var(dim=(0, 2, 3), unbiased=False)
        c = mean.numel()
        g = torch.Generator().manual_seed(1000 + c)
        bn.running_mean.copy_(mean + 0.1 * var.sqrt() * torch.randn(c, generator=g, dtype=y.dtype))
        bn.running_var.copy_(var * (0.8 + 0.4 * torch.rand(c, generator=g, dtype=y.dtype)))


def pool_branch(x, kind):
    """The 3x3 stride 1 pool of a block's pool branch."""
    if kind == MAX:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=kind == AVG_INCLUDE_PAD)


class InceptionA(nn.Module):  # Mixed_5b, 5c, 5d at 35x35
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = ConvUnit(cin, 64, 1)
        self.branch5x5_1 = ConvUnit(cin, 48, 1)
        self.branch5x5_2 = ConvUnit(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvUnit(cin, 64, 1)
        self.branch3x3dbl_2 = ConvUnit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvUnit(96, 96, 3, padding=1)
        self.branch_pool = ConvUnit(cin, pool_features, 1)
        self.pool = AVG_EXCLUDE_PAD

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(pool_branch(x, self.pool))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):  # Mixed_6a: 35x35 -> 17x17
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = ConvUnit(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvUnit(cin, 64, 1)
        self.branch3x3dbl_2 = ConvUnit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvUnit(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):  # Mixed_6b..6e at 17x17, factorised 7x7
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = ConvUnit(cin, 192, 1)
        self.branch7x7_1 = ConvUnit(cin, c7, 1)
        self.branch7x7_2 = ConvUnit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvUnit(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvUnit(cin, c7, 1)
        self.branch7x7dbl_2 = ConvUnit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvUnit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvUnit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvUnit(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvUnit(cin, 192, 1)
        self.pool = AVG_EXCLUDE_PAD

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for unit in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            d = unit(d)
        bp = self.branch_pool(pool_branch(x, self.pool))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):  # Mixed_7a: 17x17 -> 8x8
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = ConvUnit(cin, 192, 1)
        self.branch3x3_2 = ConvUnit(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvUnit(cin, 192, 1)
        self.branch7x7x3_2 = ConvUnit(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvUnit(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvUnit(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):  # Mixed_7b (average pool), Mixed_7c (max pool) at 8x8
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = ConvUnit(cin, 320, 1)
        self.branch3x3_1 = ConvUnit(cin, 384, 1)
        self.branch3x3_2a = ConvUnit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvUnit(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvUnit(cin, 448, 1)
        self.branch3x3dbl_2 = ConvUnit(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvUnit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvUnit(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvUnit(cin, 192, 1)
        self.pool = pool

    def forward(self, x):
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bp = self.branch_pool(pool_branch(x, self.pool))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(s), self.branch3x3_2b(s), self.branch3x3dbl_3a(d),
                          self.branch3x3dbl_3b(d), bp], 1)


class FidInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvUnit(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvUnit(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvUnit(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvUnit(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvUnit(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, AVG_EXCLUDE_PAD)
        self.Mixed_7c = InceptionE(2048, MAX)
        self.fc = nn.Linear(2048, NUM_CLASSES)

    def forward(self, x):
        """x [N, 3, 299, 299] in [-1, 1] -> pool_3 [N, 2048], logits [N, 1008] and
        Mixed_6d.branch1x1's output [N, 192, 17, 17]."""
        spatial = []
        hook = self.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, out: spatial.append(out))
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        hook.remove()
        pool3 = x.mean(dim=(2, 3))
        return pool3, self.fc(pool3), spatial[0]


def set_pools(net, average, last):
    """The pool of every average-pool branch (A, C, E_1) and of E_2's."""
    for m in net.modules():
        if isinstance(m, (InceptionA, InceptionC)) or m is net.Mixed_7b:
            m.pool = average
    net.Mixed_7c.pool = last


def learnable_parameters(net):
    return sum(p.numel() for p in net.parameters())


# --- the reference data ----------------------------------------------------------------

def smooth_images(n, seed):
    """n images [n, 3, 299, 299] in [-1, 1]: coarse colour fields plus fine noise, so that
    borders, gradients and texture all reach the first layers."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, 3, 12, 12, generator=g, dtype=torch.float64) * 2 - 1, size=(299, 299),
                           mode="bilinear", align_corners=False)
    fine = torch.rand(n, 3, 299, 299, generator=g, dtype=torch.float64) * 2 - 1
    return (0.7 * coarse + 0.3 * fine).clamp(-1, 1)


def random_weights(net, seed):
    """He-scaled convolutions, BN affine parameters near (1, 0), a classifier with logits
    of order one; then the BN statistics calibrated on a fixed batch."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ConvUnit):
                w = m.conv.weight
                w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * (2.0 / w[0].numel()) ** 0.5)
                c = m.bn.weight.numel()
                m.bn.weight.copy_(0.5 + torch.rand(c, generator=g, dtype=w.dtype))
                m.bn.bias.copy_(0.5 * torch.rand(c, generator=g, dtype=w.dtype) - 0.2)
        net.fc.weight.copy_(torch.randn(net.fc.weight.shape, generator=g, dtype=net.fc.weight.dtype) / 2048 ** 0.5)
        net.fc.bias.copy_(0.1 * torch.randn(NUM_CLASSES, generator=g, dtype=net.fc.bias.dtype))
        units = [m for m in net.modules() if isinstance(m, ConvUnit)]
        for u in units:
            u.calibrating = True
        net(smooth_images(2, seed + 1).to(net.fc.weight.dtype))
        for u in units:
            u.calibrating = False


def nhwc(t):
    return np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy())


def outputs(net, x):
    with torch.no_grad():
        pool3, logits, spatial = net(x)
    return {"pool3": pool3.numpy(), "logits": logits.numpy(), "spatial": nhwc(spatial[:, :SPATIAL_CHANNELS])}


def pytorch_fid_state_dict(net):
    """float32 tensors under pytorch-fid's names (no BN batch counters)."""
    return {k: v.detach().to(torch.float32).clone() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def torchvision_like_state_dict():
    """Shapes only (expanded views of one zero: a small file)."""
    shapes = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "AuxLogits.conv0.conv.weight": (128, 768, 1, 1),
              "AuxLogits.fc.weight": (1000, 768), "AuxLogits.fc.bias": (1000,), "fc.weight": (1000, 2048),
              "fc.bias": (1000,)}
    return {k: torch.zeros(1).expand(*s) for k, s in shapes.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for the files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    net = FidInception().eval()
    count = learnable_parameters(net)
    assert count == LEARNABLE_PARAMETERS, f"{count} learnable parameters, expected {LEARNABLE_PARAMETERS}"
    random_weights(net, seed=20151205)
    state = pytorch_fid_state_dict(net)
    torch.save(state, os.path.join(args.out, "inception_ref.pth"))
    torch.save(torchvision_like_state_dict(), os.path.join(args.out, "torchvision_like.pth"))

    # The reference in float64 from exactly the float32 values the file holds; the wrong
    # variants, which only need to be far from it, in float32.
    x = smooth_images(2, seed=299)
    results = {"": outputs(copy.deepcopy(net).double(), x)}
    x = x.float()
    set_pools(net, AVG_INCLUDE_PAD, MAX)
    results["variants/avg_include_pad/"] = outputs(net, x)
    set_pools(net, AVG_EXCLUDE_PAD, AVG_EXCLUDE_PAD)
    results["variants/avg_in_last_block/"] = outputs(net, x)

    with h5py.File(os.path.join(args.out, "inception_ref.h5"), "w") as f:
        f.attrs["learnable_parameters"] = count
        f.create_dataset("input", data=nhwc(x).astype(np.float32))
        for prefix, out in results.items():
            for name, value in out.items():
                f.create_dataset(prefix + name, data=value.astype(np.float32))
    right = results[""]
    for prefix in ("variants/avg_include_pad/", "variants/avg_in_last_block/"):
        far = {k: float(np.linalg.norm(v - right[k]) / np.linalg.norm(right[k])) for k, v in results[prefix].items()}
        print(f"inception_ref: {prefix.split('/')[1]} differs by " +
              ", ".join(f"{k} {e:.3g}" for k, e in far.items()))
    rms = {k: float(np.sqrt(np.mean(right[k] ** 2))) for k in ("pool3", "logits")}
    print(f"inception_ref: wrote {args.out}: {count} learnable parameters, pool_3 RMS {rms['pool3']:.3g}, "
          f"logits RMS {rms['logits']:.3g}")


if __name__ == "__main__":
    main()
