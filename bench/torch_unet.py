"""The PyTorch side of bench/vs_pytorch.sh: the same model (tests/reference/unet_ref.py),
the same batch and the same step (forward, L_simple, backward, Adam) on the CPU.
Run with Debian's /usr/bin/python3 (python3-torch)."""
import argparse
import os
import statistics
import sys
import time

import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import unet_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    model = unet_ref.from_config(cfg["model"])
    train = cfg.get("train", {})
    opt = torch.optim.Adam(model.parameters(), lr=train.get("lr", 2e-4), betas=(0.9, 0.999), eps=1e-8)
    r, c = cfg["model"]["resolution"], cfg["model"]["in_channels"]
    n = args.batch
    x = torch.randn(n, c, r, r)
    noise = torch.randn(n, cfg["model"]["out_ch"], r, r)
    t = torch.arange(n) * 997 % 1000
    print(f"torch_unet: {args.config}, batch {n}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"MKLDNN {torch.backends.mkldnn.is_available()}")

    model.train()
    times = []
    for it in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = ((model(x, t) - noise) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it >= args.warmup:
            times.append(time.perf_counter() - t0)
    train_s = statistics.median(times)
    print(f"train step: {train_s:.4f} s  ({n / train_s:.2f} img/s)")

    model.eval()
    times = []
    with torch.no_grad():
        for it in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            model(x, t)
            if it >= args.warmup:
                times.append(time.perf_counter() - t0)
    fwd_s = statistics.median(times)
    print(f"forward:    {fwd_s:.4f} s  ({n / fwd_s:.2f} img/s)")
    print(f"RESULT train_img_s={n / train_s:.4f} forward_img_s={n / fwd_s:.4f}")


if __name__ == "__main__":
    main()
