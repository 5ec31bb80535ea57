"""Plots the paper's Fig. 5 (distortion and rate against reverse-process steps, and
distortion against rate) from the rate_distortion.csv that `ddpm_eval rate-distortion`
writes, with matplotlib (Debian's python3-matplotlib; run with /usr/bin/python3).

usage: plot_rate_distortion.py DIR/rate_distortion.csv OUT.png
"""
import argparse
import csv
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot_rate_distortion.py: error: matplotlib is missing (apt-get install python3-matplotlib)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("out")
    args = ap.parse_args()
    try:
        with open(args.csv, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["reverse_steps"]) for r in rows]
        rate = [float(r["rate_bpd"]) for r in rows]
        rmse = [float(r["distortion_rmse"]) for r in rows]
    except (OSError, KeyError, ValueError) as e:
        print(f"plot_rate_distortion.py: error: {args.csv}: {e}", file=sys.stderr)
        sys.exit(2)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].plot(steps, rmse)
    ax[0].set(xlabel="Reverse process steps (T - t + 1)", ylabel="Distortion (RMSE [0, 255])")
    ax[1].plot(steps, rate)
    ax[1].set(xlabel="Reverse process steps (T - t + 1)", ylabel="Rate (bits/dim)")
    ax[2].plot(rate, rmse)
    ax[2].set(xlabel="Rate (bits/dim)", ylabel="Distortion (RMSE [0, 255])")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
