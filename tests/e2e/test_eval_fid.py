"""End to end: `ddpm_eval fid` and `ddpm_eval is` (issue 12) with random Inception
weights (tests/reference/inception_ref.py: pytorch-fid's network, BatchNorm statistics
calibrated so that activations stay O(1)), converted by tools/convert_inception.py.

- The same images as a PNG folder and as an .npz give the same statistics: FID 0
  against each other (to the eigendecompositions' rounding); another set gives a positive, finite FID although N < 2048 makes
  both covariances singular.
- --save-stats writes pytorch-fid's mu/sigma file, numpy reads it, and FID against it
  equals FID against the images; it refuses to overwrite.
- `is` prints `IS: <mean> ± <std> (resize tf, other Inception weights ...)`: improved-gan's
  score of softmax(pool_3 · Wᵀ) without the classifier's bias, K splits at i·N//K,
  against numpy on the reference network's features, with a classifier bias large
  enough that adding it would move the score far past the tolerance.
- Every result line and JSON line says which resize and weights made it; statistics
  saved with one resize and compared with images through another: exit 2, one line
  naming both.
- `evaluate` prints what guided-diffusion's evaluator.py prints, each value against the
  evaluator's formulas in numpy/scipy on the features of the plain-torch reference
  network of the same images, resized by the numpy port of TF's resize: IS of
  softmax(pool_3 · Wᵀ) without the bias in parts of 5000, FID, sFID (17·17·7 NHWC),
  precision and recall (k = 3, the float16 port of the evaluator's DistanceBlock, and
  exact with --pr-distances float64); an .npz's mu/sigma/mu_s/sigma_s replace the
  statistics.
- No weights: exit 2 and one line that says how to get them.

usage: test_eval_fid.py --ddpm-eval PATH --workdir DIR
"""
import json
import os
import re

import numpy as np
import torch

import e2e_util as u  # puts tests/reference on sys.path
import inception_input_ref  # noqa: E402
import inception_ref  # noqa: E402
import make_eval_reference  # noqa: E402  (the evaluator's precision/recall, float16 and exact)
from scipy import linalg  # noqa: E402

N = 12


def reference_features(net, images):
    """pool_3 and the flattened sFID map of uint8 images (float32 network, float64 out)."""
    x = np.stack([inception_input_ref.tf_resize(im) for im in images])
    out = inception_ref.outputs(net, torch.from_numpy(x).permute(0, 3, 1, 2))
    return out["pool3"].astype(np.float64), out["spatial"].reshape(len(images), -1).astype(np.float64)


def statistics(features):
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet(a, b):
    """evaluator.py's FIDStatistics.frechet_distance (scipy's sqrtm of S1 S2)."""
    (mu1, s1), (mu2, s2) = a, b
    covmean = linalg.sqrtm(s1.dot(s2), disp=False)[0].real
    return float((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def exact_margin(ref, samples, k=3):
    """How close the nearest exact decision is to a tie (rounding must not flip it)."""
    d = make_eval_reference.squared_distances
    r_ref, r_samples = make_eval_reference.radii(ref, d), make_eval_reference.radii(samples, d)
    between = d(ref, samples)
    return min(np.min(np.abs(between - r_ref[:, None])), np.min(np.abs(between - r_samples[None, :])))


def inception_score(logits, splits):
    """improved-gan's score: softmax, K contiguous parts [i*N//K, (i+1)*N//K)."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(part.mean(0, keepdims=True))), 1))))
    return float(np.mean(scores)), float(np.std(scores))


def evaluator_results(result):
    values = {}
    for line in result.stdout.strip().splitlines():
        m = re.fullmatch(r"(Inception Score|FID|sFID|Precision|Recall): (-?[0-9.e+-]+) \(resize tf, (.*)\)", line)
        if m:
            u.check(m.group(3).startswith("other Inception weights"), f"evaluate says {line!r}")
            values[m.group(1)] = float(m.group(2))
    u.check(len(values) == 5, f"evaluate printed {result.stdout!r}")
    return values


def check_evaluate(args, net, weights, work, a, b, a_npz, b_npz):
    ref_pool, ref_spatial = reference_features(net, a)
    pool, spatial = reference_features(net, b)
    w = net.fc.weight.detach().numpy().astype(np.float64)
    is_ref = inception_score(pool @ w.T, 1)[0]
    # The reference network's float32 features: the float16 port rounds them as TF would.
    ref32, pool32 = ref_pool.astype(np.float32), pool.astype(np.float32)
    precision, recall, _ = make_eval_reference.precision_recall(ref32, pool32, make_eval_reference.evaluator_distances)
    exact_precision, exact_recall, _ = make_eval_reference.precision_recall(ref_pool, pool,
                                                                            make_eval_reference.squared_distances)
    margin = exact_margin(ref_pool, pool)
    u.check(margin > 1e-6, f"a radius ties within {margin}: the case cannot tell rounding from an error")
    expected = {"Inception Score": is_ref, "FID": frechet(statistics(pool), statistics(ref_pool)),
                "sFID": frechet(statistics(spatial), statistics(ref_spatial)), "Precision": precision,
                "Recall": recall}
    evaluate = [args.ddpm_eval, "evaluate", "--inception", weights, "--batch", "5"]
    got = evaluator_results(u.expect_ok(evaluate + [a_npz, b_npz]))
    for name, want in expected.items():
        tolerance = 0 if name in ("Precision", "Recall") else 1e-3 * abs(want)
        u.check(abs(got[name] - want) <= tolerance + 1e-6, f"evaluate {name}: {got[name]} vs numpy {want}")
    print("ok   evaluate: " + ", ".join(f"{k} {got[k]:.6f} (numpy {expected[k]:.6f})" for k in expected))
    exact = evaluator_results(u.expect_ok(evaluate + ["--pr-distances", "float64", a_npz, b_npz]))
    # Printed with 6 decimals.
    u.check(abs(exact["Precision"] - exact_precision) < 1e-6 and abs(exact["Recall"] - exact_recall) < 1e-6,
            f"--pr-distances float64: {exact['Precision']}, {exact['Recall']} vs numpy {exact_precision}, {exact_recall}")
    print(f"ok   evaluate --pr-distances float64: precision {exact_precision:.6f}, recall {exact_recall:.6f}")

    # A reference batch with its statistics (OpenAI's hold mu, sigma, mu_s, sigma_s): here
    # those of the samples themselves, so FID and sFID are 0, precision and recall as before.
    with_stats = os.path.join(work, "ref_with_stats.npz")
    (mu, sigma), (mu_s, sigma_s) = statistics(pool), statistics(spatial)
    np.savez(with_stats, arr_0=np.stack(a), mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    again = evaluator_results(u.expect_ok(evaluate + [with_stats, b_npz]))
    u.check(abs(again["FID"]) < 1e-3 * expected["FID"] and abs(again["sFID"]) < 1e-3 * expected["sFID"],
            f"with the samples' own statistics in the reference: FID {again['FID']}, sFID {again['sFID']}")
    u.check(again["Precision"] == got["Precision"] and again["Recall"] == got["Recall"],
            "precision/recall changed with the reference's statistics")
    print(f"ok   evaluate: the reference's mu/sigma/mu_s/sigma_s are used (FID {again['FID']:.2e}, "
          f"sFID {again['sFID']:.2e})")


def check_inception_score(args, work, images, npz):
    """`is` against improved-gan's score of the reference network's bias-free logits, on
    weights whose classifier bias is large: with the bias the score would be far off."""
    net, weights = u.random_inception_weights(work, seed=11, fc_bias_scale=10.0, name="inception_biased")
    pool, _ = reference_features(net, images)
    w, b = net.fc.weight.detach().numpy().astype(np.float64), net.fc.bias.detach().numpy().astype(np.float64)
    splits = 3
    want, want_std = inception_score(pool @ w.T, splits)
    with_bias = inception_score(pool @ w.T + b, splits)[0]
    # Ten times the tolerance below: adding the bias would fail the check.
    u.check(abs(with_bias - want) > 1e-2 * want, f"the bias moves the score only from {want} to {with_bias}")
    r = u.expect_ok([args.ddpm_eval, "is", "--inception", weights, "--splits", str(splits), "--json", npz])
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"IS: ([0-9.]+) \u00b1 ([0-9.]+) \(resize tf, other Inception weights .*\)", last)
    u.check(m is not None, f"is: last line {last!r}")
    score, std = float(m.group(1)), float(m.group(2))
    u.check(abs(score - want) <= 1e-3 * want and abs(std - want_std) <= 1e-3 * max(want_std, 1e-3),
            f"IS {score} ± {std}, numpy without the bias {want} ± {want_std} (with it {with_bias})")
    record = json.loads(r.stdout.strip().splitlines()[-2])
    u.check(record["inception_weights"] == "other" and record["resize"] == "tf" and
            abs(record["inception_score"] - score) < 1e-5, f"is --json: {record}")
    print(f"ok   {last}: numpy without the bias {want:.6f} ± {want_std:.6f}, with it {with_bias:.6f}")


def check_provenance(args, work, fid, weights, a_dir, b_npz):
    """Statistics carry their resize and weights: another resize is refused by name, and a
    pytorch-fid file without provenance is taken with a note."""
    torch_stats = os.path.join(work, "a_torch_stats.npz")
    u.expect_ok(fid + ["--resize", "torch", "--save-stats", a_dir, torch_stats])
    with np.load(torch_stats) as z:
        u.check(str(z["inception_resize"]) == "torch" and int(z["num_images"]) == N and
                len(str(z["inception_weights_sha256"])) == 64, f"provenance {dict(z)}")
        mu, sigma = z["mu"], z["sigma"]
    u.expect_one_line_error(fid + [torch_stats, b_npz], [torch_stats, "resize torch", "resize tf"],
                            "torch statistics against tf features")
    plain = os.path.join(work, "a_plain_stats.npz")
    np.savez_compressed(plain, mu=mu, sigma=sigma)  # as pytorch-fid writes them
    r = u.expect_ok(fid + ["--resize", "torch", plain, b_npz])
    u.check("without provenance" in r.stderr, f"no note on a file without provenance: {r.stderr!r}")
    r = u.expect_ok(fid + ["--resize", "torch", "--json", torch_stats, b_npz])
    record = json.loads(r.stdout.strip().splitlines()[-2])
    u.check(record["resize"] == "torch" and record["inception_weights"] == "other", f"fid --json: {record}")
    print("ok   provenance: torch statistics against tf features refused; pytorch-fid's plain file taken with a note")


def main():
    args = u.eval_test_args()
    work = args.workdir
    net, weights = u.random_inception_weights(work)

    a_dir, b_npz, a_npz = os.path.join(work, "a"), os.path.join(work, "b.npz"), os.path.join(work, "a.npz")
    os.makedirs(a_dir)
    a = u.make_images(n=N, size=32, seed=1)
    for i, image in enumerate(a):
        u.write_png(os.path.join(a_dir, f"{i:02d}.png"), image)
    np.savez(a_npz, arr_0=np.stack(a))
    np.savez_compressed(b_npz, arr_0=np.stack(u.make_images(n=N, size=32, seed=2))[:, ::-1])
    fid = [args.ddpm_eval, "fid", "--inception", weights, "--batch", "5"]

    same = u.fid_value(u.expect_ok(fid + [a_dir, a_npz]))
    apart = u.fid_value(u.expect_ok(fid + [a_dir, b_npz]))
    u.check(np.isfinite(apart) and apart > 1e-3, f"FID between different sets is {apart}")
    # 0 up to the eigendecompositions' rounding on singular 2048 x 2048 covariances.
    u.check(abs(same) < 1e-4 * apart, f"FID of a folder against the .npz of the same images is {same}, not 0")
    print(f"ok   FID(folder, npz of the same images) = {same:.2e}; FID(a, b) = {apart:.6f} with N = {N} < 2048")

    stats = os.path.join(work, "a_stats.npz")
    u.expect_ok(fid + ["--save-stats", a_dir, stats])
    with np.load(stats) as z:
        mu, sigma = z["mu"], z["sigma"]
    u.check(mu.shape == (2048,) and sigma.shape == (2048, 2048) and mu.dtype == np.float64 and
            sigma.dtype == np.float64, f"stats: mu {mu.shape} {mu.dtype}, sigma {sigma.shape} {sigma.dtype}")
    u.check(np.allclose(sigma, sigma.T), "sigma is not symmetric")
    from_stats = u.fid_value(u.expect_ok(fid + [stats, b_npz]))
    u.check(abs(from_stats - apart) <= 1e-9 * max(1.0, apart), f"FID from stats {from_stats} vs from images {apart}")
    print(f"ok   --save-stats: numpy reads mu [2048] and sigma [2048, 2048]; FID from them {from_stats:.6f}")
    before = open(stats, "rb").read()
    u.expect_one_line_error(fid + ["--save-stats", a_dir, stats], [stats, "exists"], "--save-stats over a file")
    u.check(open(stats, "rb").read() == before, "the statistics file was changed")

    check_inception_score(args, work, a, a_npz)
    check_provenance(args, work, fid, weights, a_dir, b_npz)

    b_images = list(np.load(b_npz)["arr_0"])
    check_evaluate(args, net, weights, work, a, b_images, a_npz, b_npz)

    env_free = [args.ddpm_eval, "fid", "--inception", os.path.join(work, "none.h5"), a_dir, b_npz]
    u.expect_one_line_error(env_free, ["none.h5", "convert_inception.py"], "no Inception weights")


if __name__ == "__main__":
    u.main_wrapper(main)
