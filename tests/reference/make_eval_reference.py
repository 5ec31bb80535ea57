"""References for the evaluation's statistics layer (tests/eval), made at test time with
numpy and scipy, independently of the C++ code:

- npz/: .npz files as numpy writes them (np.savez, np.savez_compressed, zip64 records,
  data descriptors, npy versions 1.0/2.0/3.0) with each array's bytes beside it
  (cases.txt lists file, array, descr, shape); hostile/ holds damaged and unsupported
  files, hostile.txt the words each one's error must contain.
- fid/: random features and the Fréchet distance between them by pytorch-fid's formula
  (scipy.linalg.sqrtm of sigma1·sigma2): full rank (N = 5000, D = 2048), rank deficient
  (N = 1000, D = 2048) and small (D = 64, with pytorch-fid stats files).
- scores/: the Inception Score of logits and of probabilities (improved-gan's formula)
  and precision/recall with k = 3 radii (guided-diffusion's evaluator.py definitions):
  exact distances, and a float16 port of the evaluator's DistanceBlock on Inception-like
  features where float16 flips points (pr16.npz), and on features whose float16 norms
  overflow, where the evaluator falls back to float32 (pr_overflow.npz).

    make_eval_reference.py --out DIR             (skipped when DIR/stamp is current)
    make_eval_reference.py --check-written DIR   numpy reads the .npz files that
                                                 test_npz wrote in DIR/npz/ours exactly
"""
import argparse
import hashlib
import io
import os
import struct
import sys
import warnings
import zipfile

import numpy as np
import scipy
import scipy.linalg

K_NEIGHBOURS = 3


# --- npz files as numpy writes them ----------------------------------------------------

def plain_arrays(rng):
    return {
        "images": rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8),
        "vector": rng.standard_normal(7).astype("<f4"),
        "matrix": rng.standard_normal((3, 5)),
        "labels": rng.integers(-2**40, 2**40, size=(4, 2), dtype="<i8"),
        "scalar": np.float64(np.pi),
        "empty": np.zeros((0, 3), dtype="<f4"),
        "flags": np.array([True, False, True, True, False, False]),
        "special64": np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308, -1.0]),
        "special32": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38], dtype="<f4"),
        "rank5": rng.standard_normal((2, 1, 3, 1, 2)).astype("<f4"),
        "text": np.array("résumé ✓ 𝄞"),  # '<U10': code points of 1 to 4 UTF-8 bytes
        "count": np.int64(-7),
        **{f"ints_{t[1:]}": np.array([np.iinfo(t).min, -1 if t[1] == "i" else 1, 0, np.iinfo(t).max], dtype=t)
           for t in ("|i1", "<u2", "<i2", "<u4", "<i4", "<u8")},
    }


class Unseekable(io.RawIOBase):
    """A write-only stream without tell/seek: zipfile then writes data descriptors."""

    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)


def write_with_version(path, arrays, version):
    with zipfile.ZipFile(path, "w") as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), version=version)


def write_zip64_forced(path, arrays):
    """np.savez with zipfile's zip64 thresholds lowered, so that it writes the zip64
    fields and end record that files past 4 GiB (or 65535 members) get."""
    saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 150, 2
    try:
        np.savez(path, **arrays)
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved


def npz_cases(out):
    rng = np.random.default_rng(12)
    arrays = plain_arrays(rng)
    big = {
        "smooth": np.sin(np.arange(200000, dtype=np.float64) / 100).astype("<f4"),  # many deflate blocks
        "noise": rng.integers(0, 256, size=100000, dtype=np.uint8),                  # past the 64 KiB chunks
    }
    files = {}
    np.savez(os.path.join(out, "stored.npz"), arrays["matrix"], **arrays)  # the first one is arr_0
    files["stored.npz"] = dict(arrays, arr_0=arrays["matrix"])
    np.savez_compressed(os.path.join(out, "compressed.npz"), **arrays, **big)
    files["compressed.npz"] = dict(arrays, **big)
    write_zip64_forced(os.path.join(out, "zip64.npz"), arrays)
    files["zip64.npz"] = arrays
    with open(os.path.join(out, "descriptors.npz"), "wb") as f:
        np.savez_compressed(Unseekable(f), **arrays)
    files["descriptors.npz"] = arrays
    small = {"a": arrays["matrix"][:2], "b": arrays["images"][0, 0, :2]}  # test_eval_npz damages it byte by byte
    np.savez_compressed(os.path.join(out, "small.npz"), **small)
    files["small.npz"] = small
    for version in ((2, 0), (3, 0)):
        name = f"version{version[0]}.npz"
        write_with_version(os.path.join(out, name), arrays, version)
        files[name] = arrays

    with open(os.path.join(out, "cases.txt"), "w") as manifest:
        for file, contents in files.items():
            for name, a in contents.items():
                a = np.asarray(a)
                raw = f"{file}.{name}.raw"
                with open(os.path.join(out, raw), "wb") as f:
                    f.write(a.tobytes(order="C"))
                shape = ",".join(str(d) for d in a.shape) or "-"
                manifest.write(f"{file} {name} {a.dtype.str} {shape} {raw}\n")


# --- hostile files ---------------------------------------------------------------------

def end_record(data):
    at = data.rindex(b"PK\x05\x06")
    entries, size, offset = struct.unpack_from("<HII", data, at + 10)
    return at, entries, offset


def central_entries(data):
    """Offsets of the central directory entries of a small (non-zip64) archive."""
    _, entries, at = end_record(data)
    out = []
    for _ in range(entries):
        assert data[at:at + 4] == b"PK\x01\x02"
        out.append(at)
        n, e, c = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + n + e + c
    return out


def patched(data, offset, fmt, *values):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def npy_bytes(header_text, data=b"", version=1):
    text = header_text.encode("latin1")
    length = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text + data


def zip_of(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in members:
            z.writestr(name, content)
    return buf.getvalue()


def duplicate_members(content):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name": the point of this file
        return zip_of([("a.npy", content)] * 2)


def npz_bytes(compressed=False, **arrays):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def flip_last_data_byte(data):
    """The first member's last byte of (deflate) data inverted: its header stays readable."""
    compressed, name_length, extra_length = struct.unpack_from("<I4xHH", data, 18)
    at = 30 + name_length + extra_length + compressed - 1
    return patched(data, at, "<B", data[at] ^ 0xFF)


def hostile_cases(out):
    a, b = np.arange(6, dtype="<f8").reshape(2, 3), np.arange(4, dtype="<f4")
    good = npz_bytes(a=a, b=b)
    squeezed = npz_bytes(True, a=np.zeros(1000), b=b)
    first, second = central_entries(good)
    first_z = central_entries(squeezed)[0]
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }"
    cases = {
        "empty.npz": (b"", "not a zip archive"),
        "text.npz": (b"this is not an archive at all, only some words\n", "not a zip archive"),
        "bare-npy.npz": (npy_bytes(header % "(1,)", b"\0" * 8), "not a zip archive"),
        "truncated.npz": (good[: len(good) // 2], "not a zip archive"),
        # The central directory alone changed: its CRC, sizes, offsets, member count.
        "crc.npz": (patched(good, first + 16, "<I", 0x12345678), "directory and member headers disagree"),
        "crc-deflated.npz": (patched(squeezed, first_z + 16, "<I", 0x12345678), "directory and member headers disagree"),
        "overlap.npz": (patched(good, first + 20, "<II", 200, 200), "directory and member headers disagree"),
        "method.npz": (patched(patched(good, first + 10, "<H", 12), 8, "<H", 12), "compression method 12"),
        "encrypted.npz": (patched(good, first + 8, "<H", 1), "encrypted"),
        "local-offset.npz": (patched(good, second + 42, "<I", 3), "not a zip archive"),
        "directory-offset.npz": (patched(good, end_record(good)[0] + 16, "<I", 7), "not a zip archive"),
        "entry-count.npz": (patched(good, end_record(good)[0] + 8, "<HH", 900, 900),
                            "directory and member headers disagree"),
        "bomb.npz": (patched(squeezed, first_z + 24, "<I", 0xFFFFFFF0), "directory and member headers disagree"),
        "short-deflate.npz": (patched(squeezed, first_z + 20, "<I", 10), "directory and member headers disagree"),
        # Headers that agree about data that is not what they say: found when it is read.
        "crc-both.npz": (patched(patched(good, first + 16, "<I", 0x12345678), 14, "<I", 0x12345678),
                         "does not match its CRC-32"),
        "flipped-data.npz": (patched(good, good.index(b"\x93NUMPY") + 130, "<B", 0xAB), "does not match its CRC-32"),
        "flipped-deflate.npz": (flip_last_data_byte(squeezed), "holds more than the 8128 bytes"),
        "duplicate.npz": (duplicate_members(npy_bytes(header % "(1,)", b"\0" * 8)), "two members of the same name"),
        "same-array.npz": (zip_of([("a", npy_bytes(header % "(1,)", b"\0" * 8)),
                                   ("a.npy", npy_bytes(header % "(1,)", b"\0" * 8))]), "two members hold array 'a'"),
        "magic.npz": (zip_of([("a.npy", b"hello, not npy")]), "not an npy array"),
        "fortran.npz": (npz_bytes(a=np.asfortranarray(a)), "Fortran"),
        "big-endian.npz": (npz_bytes(a=np.arange(3, dtype=">f8")), "big-endian"),
        "object.npz": (npz_bytes(a=np.array([1, "x"], dtype=object)), "'|O' is not supported"),
        "structured.npz": (npz_bytes(a=np.zeros(2, dtype=[("x", "<f4")])), "structured"),
        "version.npz": (zip_of([("a.npy", npy_bytes(header % "(1,)", b"\0" * 8).replace(b"\x01\x00", b"\x04\x00", 1))]),
                        "version 4.0"),
        "absurd-shape.npz": (zip_of([("a.npy", npy_bytes(header % "(1099511627776, 1099511627776)"))]),
                             "too large"),
        "shape-mismatch.npz": (zip_of([("a.npy", npy_bytes(header % "(100,)", b"\0" * 8))]), "needs 800"),
        "header-length.npz": (zip_of([("a.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}")]), "claims"),
        "header-key.npz": (zip_of([("a.npy", npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}", b"\0" * 8))]), "unexpected key"),
        "header-syntax.npz": (zip_of([("a.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,",
                                                          b"\0" * 8))]), "bad npy header"),
    }
    os.makedirs(os.path.join(out, "hostile"), exist_ok=True)
    with open(os.path.join(out, "hostile.txt"), "w") as manifest:
        for name, (content, words) in cases.items():
            with open(os.path.join(out, "hostile", name), "wb") as f:
                f.write(content)
            manifest.write(f"{name}\t{words}\n")


def check_written(directory):
    """numpy reads every file test_npz wrote in ours/ exactly as the original."""
    ours = os.path.join(directory, "ours")
    written = sorted(os.listdir(ours))
    if not written:
        sys.exit(f"{ours}: nothing written")
    for file in written:
        path = os.path.join(ours, file)
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                sys.exit(f"{path}: member {bad} fails zipfile's CRC check")
        original = np.load(os.path.join(directory, file), allow_pickle=False)
        mine = np.load(path, allow_pickle=False)
        if sorted(original.files) != sorted(mine.files):
            sys.exit(f"{path}: arrays {sorted(mine.files)}, numpy wrote {sorted(original.files)}")
        for name in original.files:
            x, y = original[name], mine[name]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                sys.exit(f"{path}: array {name} is {y.dtype} {y.shape}, numpy's is {x.dtype} {x.shape}"
                         " (or their bytes differ)")
    print(f"numpy read {len(written)} files of ddpm's exactly")


# --- Fréchet distance ------------------------------------------------------------------

def random_features(rng, n, d, scale, shift):
    """Correlated features: standard normal rows through a random mixing, plus a mean."""
    mixing = rng.standard_normal((d, d)) * (scale / np.sqrt(d))
    return (rng.standard_normal((n, d)) @ mixing + shift * rng.standard_normal(d)).astype(np.float32)


def statistics(features):
    x = features.astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, written from its formula."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def fid_cases(out):
    rng = np.random.default_rng(2048)
    expected = {}
    for case, n_a, n_b, d in (("small", 300, 257, 64), ("full_rank", 5000, 5000, 2048),
                              ("rank_deficient", 1000, 1000, 2048)):
        a = random_features(rng, n_a, d, 1.0, 0.1)
        b = random_features(rng, n_b, d, 1.3, 0.1)
        np.savez(os.path.join(out, f"{case}_a.npz"), features=a)
        np.savez(os.path.join(out, f"{case}_b.npz"), features=b)
        (mu_a, sigma_a), (mu_b, sigma_b) = statistics(a), statistics(b)
        expected[case] = pytorch_fid_distance(mu_a, sigma_a, mu_b, sigma_b)
        print(f"fid {case}: N {n_a}/{n_b}, D {d}: {expected[case]!r}")
        if case == "small":  # stats files as pytorch-fid's save_fid_stats writes them
            np.savez_compressed(os.path.join(out, "small_stats_a.npz"), mu=mu_a, sigma=sigma_a)
            np.savez_compressed(os.path.join(out, "small_stats_b.npz"), mu=mu_b.astype(np.float32), sigma=sigma_b)
            # With the provenance ddpm writes beside them (numpy's own string and int64 scalars).
            np.savez(os.path.join(out, "small_stats_provenance.npz"), mu=mu_a, sigma=sigma_a,
                     inception_resize=np.array("torch"), inception_weights_sha256=np.array("ab" * 32),
                     num_images=np.int64(n_a))
    np.savez(os.path.join(out, "expected.npz"), **{k: np.float64(v) for k, v in expected.items()})


# --- Inception Score, precision and recall ---------------------------------------------

def softmax(logits):
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def inception_score(preds, splits, part_size=None):
    """improved-gan's inception_score/model.py, written from its formula: `splits`
    contiguous parts; or, with part_size, guided-diffusion evaluator.py's parts
    preds[i:i + part_size]."""
    scores = []
    n = preds.shape[0]
    bounds = ([(i * n // splits, (i + 1) * n // splits) for i in range(splits)] if part_size is None else
              [(i, min(i + part_size, n)) for i in range(0, n, part_size)])
    for begin, end in bounds:
        part = preds[begin:end]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return np.mean(scores), np.std(scores), np.array(scores)


def squared_distances(u, v):
    """guided-diffusion's _batch_pairwise_distances, in float64."""
    u, v = u.astype(np.float64), v.astype(np.float64)
    nu, nv = np.sum(u * u, axis=1)[:, None], np.sum(v * v, axis=1)[None, :]
    return np.maximum(nu - 2 * u @ v.T + nv, 0.0)


def radii(features, distances=squared_distances):
    return np.partition(distances(features, features), K_NEIGHBOURS, axis=1)[:, K_NEIGHBOURS]


def evaluator_distances(u, v):
    """guided-diffusion's DistanceBlock.pairwise_distances, ported: _batch_pairwise_distances
    of the features cast to float16 (tf.square rounds each square to float16; the row
    sums and the matrix product, which TF on a GPU accumulates in float32, are summed in
    float64 here and rounded to float16; norm_u - 2 * uv and + norm_v are float16
    operations), max 0, cast to float32; where any float16 distance is not finite, the
    same formula on the float32 features."""
    with np.errstate(over="ignore", invalid="ignore"):  # float16 overflows to inf, as in TF
        u16, v16 = u.astype(np.float16), v.astype(np.float16)
        norm_u = np.square(u16).astype(np.float64).sum(axis=1).astype(np.float16)
        norm_v = np.square(v16).astype(np.float64).sum(axis=1).astype(np.float16)
        uv = (u16.astype(np.float64) @ v16.astype(np.float64).T).astype(np.float16)
        d16 = np.maximum(norm_u[:, None] - np.float16(2) * uv + norm_v[None, :], np.float16(0))
    if np.all(np.isfinite(d16)):
        return d16.astype(np.float32)
    u32, v32 = u.astype(np.float32), v.astype(np.float32)
    n32_u, n32_v = np.square(u32).sum(axis=1), np.square(v32).sum(axis=1)
    return np.maximum(n32_u[:, None] - np.float32(2) * (u32 @ v32.T) + n32_v[None, :], np.float32(0))


def precision_recall(reference, samples, distances):
    """evaluator.py's compute_prec_recall: radii from each set, then which samples lie in
    a reference ball (precision) and which reference points in a sample ball (recall)."""
    r_ref, r_samples = radii(reference, distances), radii(samples, distances)
    d = distances(reference, samples)
    return (np.mean(np.any(d <= r_ref[:, None], axis=0)), np.mean(np.any(d <= r_samples[None, :], axis=1)), r_ref)


def inception_like(rng, n, mixing, shift):
    """Non-negative features with squared norms near 900, as pool_3 features are: a
    low-rank random mixing through a ReLU."""
    z = rng.standard_normal((n, mixing.shape[0]))
    return np.maximum(z @ mixing + 0.35 + shift, 0).astype(np.float32)


def half_precision_cases(out, expected):
    """The first seed whose float16 precision or recall differs from the exact one."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        mixing = 0.08 * rng.standard_normal((64, 2048))
        reference = inception_like(rng, 500, mixing, 0)
        samples = inception_like(rng, 400, mixing, 0.05 * rng.standard_normal(2048))
        p16, r16, radii16 = precision_recall(reference, samples, evaluator_distances)
        p64, r64, _ = precision_recall(reference, samples, squared_distances)
        if (p16, r16) != (p64, r64):
            break
    else:
        raise SystemExit("no seed makes float16 flip a point")
    print(f"precision/recall, float16 (seed {seed}): {p16!r}, {r16!r}; exact: {p64!r}, {r64!r}")
    np.savez(os.path.join(out, "pr16.npz"), reference=reference, samples=samples)
    expected.update(pr16_precision=p16, pr16_recall=r16, pr16_radii=radii16.astype(np.float64),
                    pr16_exact_precision=p64, pr16_exact_recall=r64)
    # Norms of ~10^6: float16 overflows, the evaluator computes these blocks in float32.
    reference, samples = 40 * reference[:150], 40 * samples[:120]
    p32, r32, _ = precision_recall(reference, samples, evaluator_distances)
    assert not np.all(np.isfinite(np.square(reference.astype(np.float16)).sum(axis=1)))
    print(f"precision/recall, float16 overflowing to float32: {p32!r}, {r32!r}")
    np.savez(os.path.join(out, "pr_overflow.npz"), reference=reference, samples=samples)
    expected.update(pr_overflow_precision=p32, pr_overflow_recall=r32)


def score_cases(out):
    rng = np.random.default_rng(3)
    logits = (4 * rng.standard_normal((1003, 1008)) + 2 * rng.standard_normal(1008)).astype(np.float32)
    probabilities = rng.dirichlet(np.full(10, 0.3), size=500).astype(np.float32)
    expected = {}
    for name, preds, splits in (("logits", softmax(logits), 10), ("probabilities", probabilities.astype(np.float64), 7)):
        mean, std, scores = inception_score(preds, splits)
        expected.update({f"is_{name}_mean": mean, f"is_{name}_std": std, f"is_{name}_splits": scores})
        print(f"inception score of {name}: {mean!r} ± {std!r} ({splits} splits)")
    # The evaluator's parts of a fixed size; 1003 rows in parts of 400: 400, 400, 203.
    mean, std, scores = inception_score(softmax(logits), None, part_size=400)
    expected.update(is_parts_mean=mean, is_parts_std=std, is_parts_splits=scores)
    print(f"inception score in parts of 400: {mean!r} ± {std!r}")

    reference = rng.standard_normal((1500, 32)).astype(np.float32)
    samples = (1.2 * rng.standard_normal((1100, 32)) + 0.4).astype(np.float32)
    r_ref, r_samples = radii(reference), radii(samples)
    d = squared_distances(reference, samples)  # [reference, sample]
    precision = np.mean(np.any(d <= r_ref[:, None], axis=0))
    recall = np.mean(np.any(d <= r_samples[None, :], axis=1))
    # How close the nearest decision is to a tie: rounding must not be able to flip it.
    margin = min(np.min(np.abs(d - r_ref[:, None]) / r_ref[:, None]), np.min(np.abs(d - r_samples[None, :]) / r_samples))
    assert margin > 1e-9, margin
    print(f"precision {precision!r}, recall {recall!r} (nearest tie at relative {margin:.2e})")
    expected.update(radii_reference=r_ref, radii_samples=r_samples, precision=precision, recall=recall)
    half_precision_cases(out, expected)
    np.savez(os.path.join(out, "logits.npz"), logits=logits)
    np.savez(os.path.join(out, "probabilities.npz"), probabilities=probabilities)
    np.savez(os.path.join(out, "pr.npz"), reference=reference, samples=samples)
    np.savez(os.path.join(out, "expected.npz"), **{k: np.float64(v) if np.ndim(v) == 0 else v
                                                   for k, v in expected.items()})


def stamp():
    with open(__file__, "rb") as f:
        return f"{hashlib.sha256(f.read()).hexdigest()} numpy {np.__version__} scipy {scipy.__version__}\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="directory for the references")
    p.add_argument("--check-written", metavar="DIR", help="the npz directory that test_npz wrote ours/ in")
    args = p.parse_args()
    if args.check_written:
        return check_written(args.check_written)
    stamp_path = os.path.join(args.out, "stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp():
        print(f"{args.out}: references are up to date")
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    for part, make in (("npz", npz_cases), ("npz", hostile_cases), ("fid", fid_cases), ("scores", score_cases)):
        os.makedirs(os.path.join(args.out, part), exist_ok=True)
        make(os.path.join(args.out, part))
    with open(stamp_path, "w") as f:
        f.write(stamp())


if __name__ == "__main__":
    main()
