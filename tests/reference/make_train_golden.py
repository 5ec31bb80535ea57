"""The PyTorch side of the multi-step training golden (tests/unit/test_golden_train.cpp),
after llm.c's test_gpt2: the same training steps as ddpm's TrainStep, run with the
reference U-Net (unet_ref.py), torch.optim.Adam, torch.nn.utils.clip_grad_norm_ and an
EMA written in torch, from the same initial weights and the same data.

What comes from ddpm, so the golden stays ddpm's RNG contract:
  the inputs file (written by the C++ test)
    attribute config_yaml      the resolved config (Config::to_yaml)
    params/<name>              the initial weights, PyTorch shapes
    pixels  int64 [steps, B, H, W, C]   each step's batch as ddpm's loader gave it
                                        (shuffled, flipped), uint8 values
  the streams of src/core/rng.h, drawn here with philox.py (the Random123-checked port),
  keyed by (train.seed, purpose, iteration, global example index):
    t      ~ U{0..T-1}: (word 0 of block 0) * T >> 32          (Purpose kTimestep)
    noise  ~ N(0, I), NHWC order per example (normal_fill)     (Purpose kNoise)
    dropout: element e (NHWC order) of example n in the ResBlock that runs l-th in the
             forward pass is kept when uniform01(word e of the stream (kDropout, sub-id
             l)) >= p; kept values are scaled by 1 / (1 - p), as torch's dropout does
Everything else is PyTorch's: the diffusion's float64 tables are the reference code's
(linear betas from np.linspace), x0 = pixels / 127.5 - 1, L_simple is F.mse_loss,
clipping is clip_grad_norm_, the update is torch.optim.Adam with the warm-up learning
rate lr * min((k - 1) / warmup, 1) set for update k (diffusion_tf's get_warmed_up_lr),
and the EMA is ema += (1 - decay) (param - ema) after each update.

The output file: float64 [steps] loss, grad_norm (before clipping), lr; float32 groups
params, ema, m, v (Adam's exp_avg, exp_avg_sq) after the last step, by parameter name.

usage: /usr/bin/python3 tests/reference/make_train_golden.py INPUTS.h5 OUTPUT.h5
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import philox  # noqa: E402
import unet_ref  # noqa: E402

# Values of the Purpose enum in src/core/rng.h.
PURPOSE_DROPOUT = 2
PURPOSE_TIMESTEP = 3
PURPOSE_NOISE = 4


def stream_words(seed, purpose, sub_id, iteration, index, count):
    """The first `count` 32-bit words of one Philox stream, in order."""
    blocks = (count + 3) // 4
    words = philox.philox4x32_10(philox.philox_counters(purpose, sub_id, iteration, index, blocks),
                                 philox.philox_key(seed))
    return words.reshape(-1)[:count]


def nhwc_to_nchw(a, shape_hwc):
    return np.ascontiguousarray(a.reshape(shape_hwc).transpose(2, 0, 1))


class KeyedDropout(nn.Module):
    """Dropout whose mask is ddpm's keyed stream instead of torch's generator."""

    def __init__(self, p, layer):
        super().__init__()
        self.p, self.layer = p, layer
        self.seed = self.iteration = None  # set before each step

    def forward(self, h):
        n, c, hh, ww = h.shape
        threshold = np.float32(self.p)
        keep = np.empty((n, c, hh, ww), dtype=np.float32)
        for i in range(n):
            words = stream_words(self.seed, PURPOSE_DROPOUT, self.layer, self.iteration, i, hh * ww * c)
            uniform = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
            keep[i] = nhwc_to_nchw((uniform >= threshold).astype(np.float32), (hh, ww, c))
        return h * torch.from_numpy(keep) / (1.0 - self.p)


def res_blocks_in_forward_order(net):
    """ddpm numbers its ResBlocks' dropout streams in the order the forward pass runs them."""
    blocks = [b for level in net.down for b in level.block]
    blocks += [net.mid.block_1, net.mid.block_2]
    for i in reversed(range(len(net.up))):
        blocks += list(net.up[i].block)
    return blocks


def linear_alphas_cumprod(diffusion):
    """The reference code's get_beta_schedule('linear') and its cumulative product, float64."""
    if diffusion["beta_schedule"] != "linear":
        raise ValueError("only the linear schedule is supported here")
    betas = np.linspace(float(diffusion["beta_start"]), float(diffusion["beta_end"]), int(diffusion["num_timesteps"]),
                        dtype=np.float64)
    return np.cumprod(1.0 - betas)


def step_inputs(pixels, iteration, seed, alphas_cumprod):
    """x_t, t and noise of one step (one rank: global example index = position in the batch)."""
    n, hh, ww, c = pixels.shape
    T = len(alphas_cumprod)
    x0 = np.stack([nhwc_to_nchw(p, (hh, ww, c)) for p in pixels.astype(np.float32)]) / np.float32(127.5) - np.float32(1)
    t = np.array([(int(stream_words(seed, PURPOSE_TIMESTEP, 0, iteration, i, 1)[0]) * T) >> 32 for i in range(n)])
    noise = np.stack([nhwc_to_nchw(philox.normal_fill(hh * ww * c, seed, PURPOSE_NOISE, 0, iteration, i), (hh, ww, c))
                      for i in range(n)])
    ab = alphas_cumprod[t][:, None, None, None]
    x_t = (np.sqrt(ab) * x0.astype(np.float64) + np.sqrt(1.0 - ab) * noise.astype(np.float64)).astype(np.float32)
    return torch.from_numpy(x_t), torch.from_numpy(t), torch.from_numpy(noise)


def train(inputs):
    cfg = yaml.safe_load(inputs.attrs["config_yaml"])
    model, train_cfg = cfg["model"], cfg["train"]
    seed, p = int(train_cfg["seed"]), float(model["dropout"])
    # PyYAML reads YAML 1.1, where 1e-08 (no dot) is a string: every number as its type.
    lr, beta1, beta2, eps, clip, decay = (float(train_cfg[k]) for k in (
        "lr", "adam_beta1", "adam_beta2", "adam_eps", "grad_clip", "ema_decay"))
    warmup = int(train_cfg["warmup_steps"])
    net = unet_ref.from_config(model).float()
    with torch.no_grad():
        for name, param in net.named_parameters():
            param.copy_(torch.from_numpy(inputs["params/" + name][...]))
    dropouts = []
    for layer, block in enumerate(res_blocks_in_forward_order(net)):
        block.dropout = KeyedDropout(p, layer)
        dropouts.append(block.dropout)
    net.train()

    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)
    ema = [q.detach().clone() for q in params]
    alphas_cumprod = linear_alphas_cumprod(cfg["diffusion"])
    pixels = inputs["pixels"][...]
    losses, norms, lrs = [], [], []
    for iteration in range(pixels.shape[0]):
        for d in dropouts:
            d.seed, d.iteration = seed, iteration
        x_t, t, noise = step_inputs(pixels[iteration], iteration, seed, alphas_cumprod)
        opt.zero_grad(set_to_none=False)
        loss = F.mse_loss(net(x_t, t), noise)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=clip)
        k = iteration + 1  # this update's number
        step_lr = lr * min((k - 1) / warmup, 1.0) if warmup > 0 else lr
        for group in opt.param_groups:
            group["lr"] = step_lr
        opt.step()
        with torch.no_grad():
            for e, q in zip(ema, params):
                e.add_(q - e, alpha=1.0 - decay)
        losses.append(loss.item())
        norms.append(norm.item())
        lrs.append(step_lr)
        print("step %d: t %s, loss %.7f, grad norm %.5f%s, lr %.3g" % (
            k, t.tolist(), losses[-1], norms[-1], " (clipped)" if norms[-1] > clip else "", step_lr))
    names = [name for name, _ in net.named_parameters()]
    state = {
        "params": params,
        "ema": ema,
        "m": [opt.state[q]["exp_avg"] for q in params],
        "v": [opt.state[q]["exp_avg_sq"] for q in params],
    }
    return dict(loss=losses, grad_norm=norms, lr=lrs), {g: dict(zip(names, ts)) for g, ts in state.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", help="the inputs file the C++ test wrote")
    parser.add_argument("output", help="where to write PyTorch's losses, norms and final state")
    args = parser.parse_args()
    philox.check_known_answers()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with h5py.File(args.inputs, "r") as inputs:
        per_step, state = train(inputs)
    with h5py.File(args.output, "w") as out:
        for key, values in per_step.items():
            out[key] = np.asarray(values, dtype=np.float64)
        for group, tensors in state.items():
            for name, value in tensors.items():
                out[group + "/" + name] = value.detach().numpy().astype(np.float32)


if __name__ == "__main__":
    main()
