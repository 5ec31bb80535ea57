"""Golden values for the optimizer (tests/unit/test_optim.cpp): torch.optim.Adam with the
DDPM reference's warm-up, TF-style global-norm clipping and an EMA of the weights.

Per update k = 1, 2, ... (k - 1 updates completed before it):
  g     = grad * multiplier                          (e.g. 1 / world size after a sum)
  norm  = ||g||_2 over the whole flat buffer          (reported, before clipping)
  g    *= clip / max(norm, clip)                     (tf.clip_by_global_norm; clip 0: off)
  lr_k  = lr * min((k - 1) / warmup, 1)              (diffusion_tf/utils.py get_warmed_up_lr,
                                                      read before TF increments global_step)
  torch.optim.Adam step with lr_k, betas (0.9, 0.999), eps 1e-8
  ema  += (1 - decay) * (param - ema)                (shadow starts as the initial weights)

The flat buffer has 320 floats in three "tensors" separated by zero gaps (as the C++
parameter layout pads tensors to 16 floats); gaps get zero gradients and must stay zero.

    /usr/bin/python3 tests/reference/make_optim_reference.py  # writes golden_optim.h5
"""
import os

import numpy as np
import torch

from make_diffusion_reference import create_group, create_h5

N = 320
GAPS = [slice(100, 112), slice(250, 256)]  # zero padding between tensors
STEPS = 20
CHECKPOINTS = [1, 2, 5, 6, 10, 20]  # states stored after these updates

RUNS = {
    # warm-up over 5 updates, clipping at 1, a 2-rank average, a short EMA to see it move
    "warmup_clip": dict(lr=1e-2, warmup=5, clip=1.0, decay=0.9, multiplier=0.5),
    # no warm-up, no clipping, the paper's EMA decay
    "plain": dict(lr=2e-3, warmup=0, clip=0.0, decay=0.9999, multiplier=1.0),
}


def gradient_sequence(rng):
    """Gradients whose norms (after the multiplier) straddle the clip threshold 1."""
    scales = np.array([0.02, 0.2, 0.03, 0.15, 0.04, 0.3, 0.01, 0.25, 0.05, 0.12,
                       0.02, 0.5, 0.03, 0.08, 0.2, 0.02, 0.06, 0.4, 0.01, 0.1])
    g = rng.standard_normal((STEPS, N)) * scales[:, None]
    for gap in GAPS:
        g[:, gap] = 0.0
    return g.astype(np.float32)


def run(init, grads, lr, warmup, clip, decay, multiplier):
    param = torch.nn.Parameter(torch.from_numpy(init.copy()))
    opt = torch.optim.Adam([param], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    ema = param.detach().clone()
    norms, lrs, states = [], [], {}
    for k in range(1, STEPS + 1):
        g = torch.from_numpy(grads[k - 1])
        norm = multiplier * float(np.sqrt(np.sum(grads[k - 1].astype(np.float64) ** 2)))
        scale = multiplier * (clip / max(norm, clip) if clip > 0 else 1.0)
        param.grad = g * np.float32(scale)
        step_lr = lr * min((k - 1) / warmup, 1.0) if warmup > 0 else lr
        for group in opt.param_groups:
            group["lr"] = step_lr
        opt.step()
        with torch.no_grad():
            ema.add_(param - ema, alpha=1.0 - decay)
        norms.append(norm)
        lrs.append(step_lr)
        if k in CHECKPOINTS:
            st = opt.state[param]
            states[k] = [t.detach().numpy().copy() for t in (param, st["exp_avg"], st["exp_avg_sq"], ema)]
    return np.array(norms), np.array(lrs), states


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_optim.h5")
    rng = np.random.default_rng(8000)
    with create_h5(path) as h5:
        h5.attrs["generator"] = "tests/reference/make_optim_reference.py"
        h5["checkpoints"] = np.array(CHECKPOINTS, dtype=np.int64)
        for name, cfg in RUNS.items():
            init = (rng.standard_normal(N) * 0.1).astype(np.float32)
            for gap in GAPS:
                init[gap] = 0.0
            grads = gradient_sequence(rng)
            norms, lrs, states = run(init, grads, **cfg)
            g = create_group(h5, name)
            for key, val in cfg.items():
                g.attrs[key] = float(val)
            g["init"], g["grads"], g["grad_norm"], g["lr"] = init, grads, norms, lrs
            g["states"] = np.stack([np.stack(states[k]) for k in CHECKPOINTS])  # [checkpoint, 4, N]
            g.attrs["state_rows"] = "param,m,v,ema"
            clipped = int(np.sum(norms > cfg["clip"])) if cfg["clip"] > 0 else 0
            print(f"{name}: {clipped} of {STEPS} updates clipped, norms {norms.min():.3f}..{norms.max():.3f}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
