"""The PyTorch side of bench/vs_pytorch.sh (CPU) and bench/gpu_check.sh (GPU): the same
model (tests/reference/unet_ref.py), the same batch and the same step (forward,
L_simple, backward, global-norm clipping, Adam, and the EMA update the paper keeps).
CPU (the default): run with Debian's /usr/bin/python3 (python3-torch).
--precision bf16 runs under autocast on either device (bf16 matrix inputs, fp32 master
weights and optimizer); on the CPU, where PyTorch 1.13's autocast fails on this model,
the failure is reported as `RESULT ... bf16_failed=1` with its message. GPU: --device
cuda [--precision fp32|tf32|bf16] [--compile]; tf32 allows TF32 in cuDNN and cuBLAS,
fp32 forbids it. The RESULT line ends with the process's peak resident memory. Activations are channels_last (cuDNN's fastest layout),
Adam is the fused CUDA one: PyTorch at its best on the card."""
import argparse
import contextlib
import math
import os
import resource
import statistics
import sys
import time

import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import unet_ref  # noqa: E402


def timestep_embedding_on_device(t, dim):
    """unet_ref.timestep_embedding with its frequencies made on t's device (same math)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000.0) / (half - 1)))
    arg = t.to(torch.float32)[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is reported)")
    ap.add_argument("--mode", choices=["both", "train", "forward"], default="both")
    args = ap.parse_args()

    dev = args.device
    torch.set_num_threads(args.threads)
    if dev == "cpu":
        torch.set_flush_denormal(True)
    else:
        unet_ref.timestep_embedding = timestep_embedding_on_device
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    model = unet_ref.from_config(cfg["model"]).to(dev)
    fmt = torch.channels_last if dev == "cuda" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    train = cfg.get("train", {})
    adam_kw = {"fused": True} if dev == "cuda" else {}
    opt = torch.optim.Adam(model.parameters(), lr=train.get("lr", 2e-4), betas=(0.9, 0.999), eps=1e-8, **adam_kw)
    r, c = cfg["model"]["resolution"], cfg["model"]["in_channels"]
    n = args.batch
    x = torch.randn(n, c, r, r).to(dev).to(memory_format=fmt)
    noise = torch.randn(n, cfg["model"]["out_ch"], r, r).to(dev).to(memory_format=fmt)
    t = (torch.arange(n) * 997 % 1000).to(dev)
    # The EMA the paper keeps (decay 0.9999), updated after every step as ddpm does.
    params = [p for p in model.parameters()]
    ema = [p.detach().clone() for p in params]
    decay = train.get("ema_decay", 0.9999)
    run = torch.compile(model) if args.compile else model
    if dev == "cpu":
        print(f"torch_unet: {args.config}, batch {n}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"MKLDNN {torch.backends.mkldnn.is_available()}")
    else:
        print(f"torch_unet: {args.config}, batch {n}, torch {torch.__version__}, {torch.cuda.get_device_name()}, "
              f"precision {args.precision}, {'torch.compile' if args.compile else 'eager'}")

    def autocast():
        if args.precision == "bf16":
            return torch.autocast(dev, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def peak_rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    if dev == "cpu" and args.precision == "bf16":
        try:  # one untimed step: does autocast run this model at all?
            with autocast():
                out = run(x, t)
            ((out.float() - noise) ** 2).mean().backward()
            opt.zero_grad(set_to_none=False)
        except RuntimeError as e:
            print(f"bf16 autocast failed: {str(e).splitlines()[0]}")
            print(f"RESULT train_img_s=0 forward_img_s=0 bf16_failed=1 peak_rss_mb={peak_rss_mb():.0f}")
            return

    train_s = fwd_s = 0.0
    first_s = []
    if args.mode in ("both", "train"):
        model.train()
        times = []
        for it in range(args.warmup + args.steps):
            sync(dev)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            with autocast():
                out = run(x, t)
            loss = ((out.float() - noise) ** 2).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, params, alpha=1.0 - decay)
            sync(dev)
            if it >= args.warmup:
                times.append(time.perf_counter() - t0)
            elif it == 0:
                first_s.append(time.perf_counter() - t0)
        train_s = statistics.median(times)
        print(f"train step: {train_s:.4f} s  ({n / train_s:.2f} img/s)")

    if args.mode in ("both", "forward"):
        model.eval()
        times = []
        with torch.no_grad():
            for it in range(args.warmup + args.steps):
                sync(dev)
                t0 = time.perf_counter()
                with autocast():
                    run(x, t)
                sync(dev)
                if it >= args.warmup:
                    times.append(time.perf_counter() - t0)
                elif it == 0 and args.mode == "forward":
                    first_s.append(time.perf_counter() - t0)
        fwd_s = statistics.median(times)
        print(f"forward:    {fwd_s:.4f} s  ({n / fwd_s:.2f} img/s)")
    extra = f" first_step_s={first_s[0]:.3f}" if dev == "cuda" and first_s else ""
    print(f"RESULT train_img_s={n / train_s if train_s else 0:.4f} forward_img_s={n / fwd_s if fwd_s else 0:.4f}"
          f"{extra} peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
