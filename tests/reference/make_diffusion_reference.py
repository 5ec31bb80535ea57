"""Golden values for the diffusion process (tests/unit/test_diffusion.cpp).

Written from the formulas of Ho et al. 2020 (arXiv 2006.11239; equation numbers below),
the reference code's conventions (diffusion_tf/diffusion_utils_2.py: beta schedules,
clipped log posterior variance, fixedlarge's log(beta~_1) at t = 0, the discretised
decoder of utils.py), Nichol & Dhariwal 2021 (cosine schedule) and Song et al. 2021
(DDIM, eq. 12), in numpy float64, independently of the C++ code.

Inputs (x_0, noise, model outputs) are float32, as the C++ receives them; every
reference output is computed in float64 from those float32 values, and stored as
float64 for tables and per-example values, as float32 for [N, D] arrays (the C++ returns
those as float32; storing them so keeps the file small). Gradients of the
losses are central differences in float64, so they do not share a derivation with the
C++ analytic gradients.

    /usr/bin/python3 tests/reference/make_diffusion_reference.py  # writes golden_diffusion.h5
"""
import math
import os

import h5py
import numpy as np

SCHEDULES = ["linear", "quad", "const", "jsd", "warmup10", "warmup50", "cosine"]
BETA_START, BETA_END = 1e-4, 0.02
MEAN_TYPES = ["eps", "xstart", "xprev"]
VAR_TYPES = ["fixedlarge", "fixedsmall"]
HALF_BIN = 1.0 / 255.0


# --- schedules and tables -----------------------------------------------------------------

def beta_schedule(name, T, beta_start=BETA_START, beta_end=BETA_END):
    if name == "linear":
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if name == "quad":
        return np.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=np.float64) ** 2
    if name == "const":
        return np.full(T, beta_end, dtype=np.float64)
    if name == "jsd":  # beta_t = 1 / (T - t + 1) in the paper's 1-based t
        return 1.0 / np.linspace(T, 1, T, dtype=np.float64)
    if name in ("warmup10", "warmup50"):
        frac = 0.1 if name == "warmup10" else 0.5
        betas = np.full(T, beta_end, dtype=np.float64)
        n = int(T * frac)
        betas[:n] = np.linspace(beta_start, beta_end, n, dtype=np.float64)
        return betas
    if name == "cosine":  # Nichol & Dhariwal 2021, eq. 17, s = 0.008, beta <= 0.999
        abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)])
    raise ValueError(name)


class Process:
    """q and p of the paper with fixed variances; t is 0-based (t = 0 is the paper's t = 1)."""

    def __init__(self, betas, mean_type="eps", var_type="fixedlarge"):
        self.mean_type, self.var_type = mean_type, var_type
        b = self.betas = np.asarray(betas, dtype=np.float64)
        self.T = len(b)
        self.abar = np.cumprod(1.0 - b)
        self.abar_prev = np.concatenate([[1.0], self.abar[:-1]])
        # eq. 7: posterior q(x_{t-1} | x_t, x_0)
        self.post_var = b * (1.0 - self.abar_prev) / (1.0 - self.abar)
        self.post_logvar = np.log(np.concatenate([[self.post_var[1]], self.post_var[1:]]))
        self.post_c0 = np.sqrt(self.abar_prev) * b / (1.0 - self.abar)
        self.post_ct = np.sqrt(1.0 - b) * (1.0 - self.abar_prev) / (1.0 - self.abar)
        if var_type == "fixedlarge":
            self.model_logvar = np.log(np.concatenate([[self.post_var[1]], b[1:]]))
        else:
            self.model_logvar = self.post_logvar

    def tables(self):
        a = self.abar
        return {
            "betas": self.betas, "alphas_cumprod": a, "alphas_cumprod_prev": self.abar_prev,
            "sqrt_alphas_cumprod": np.sqrt(a), "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - a),
            "log_one_minus_alphas_cumprod": np.log(1 - a), "sqrt_recip_alphas_cumprod": np.sqrt(1 / a),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / a - 1), "posterior_variance": self.post_var,
            "posterior_log_variance_clipped": self.post_logvar, "posterior_mean_coef1": self.post_c0,
            "posterior_mean_coef2": self.post_ct,
        }

    def col(self, table, t):  # per-example coefficient, broadcast over the elements
        return table[t][:, None]

    def q_sample(self, x0, noise, t):  # eq. 4
        return self.col(np.sqrt(self.abar), t) * x0 + self.col(np.sqrt(1 - self.abar), t) * noise

    def posterior_mean(self, x0, xt, t):
        return self.col(self.post_c0, t) * x0 + self.col(self.post_ct, t) * xt

    def xstart_and_mean(self, out, xt, t, clip):
        if self.mean_type == "eps":  # eq. 15 solved for x_0
            x0 = (xt - self.col(np.sqrt(1 - self.abar), t) * out) / self.col(np.sqrt(self.abar), t)
        elif self.mean_type == "xstart":
            x0 = out
        else:  # eq. 7 solved for x_0
            x0 = (out - self.col(self.post_ct, t) * xt) / self.col(self.post_c0, t)
        if clip:
            x0 = np.clip(x0, -1, 1)
        mean = out if self.mean_type == "xprev" else self.posterior_mean(x0, xt, t)
        return x0, mean

    def vb_terms(self, out, x0, xt, t, clip):
        """L_{t-1} (eq. 5) for t >= 1, -log p(x_0 | x_1) (eq. 13) at t = 0; bits/dim."""
        _, mean = self.xstart_and_mean(out, xt, t, clip)
        lv_model = self.col(self.model_logvar, t)
        kl = gaussian_kl(self.posterior_mean(x0, xt, t), self.col(self.post_logvar, t), mean, lv_model)
        nll = -decoder_log_prob(x0, mean, 0.5 * lv_model)
        per_elem = np.where((t == 0)[:, None], nll, kl)
        return per_elem.mean(axis=1) / math.log(2)

    def mse(self, out, x0, xt, noise, t):  # eq. 14 and its x_0 / x_{t-1} analogues
        target = {"eps": noise, "xstart": x0, "xprev": self.posterior_mean(x0, xt, t)}[self.mean_type]
        return ((target - out) ** 2).mean(axis=1)

    def p_sample(self, out, xt, z, t):  # Algorithm 2, x_0 clipped
        _, mean = self.xstart_and_mean(out, xt, t, clip=True)
        sigma = np.exp(0.5 * self.col(self.model_logvar, t)) * (t != 0)[:, None]
        return mean + sigma * z

    def ddim(self, out, xt, z, t, t_prev, eta):  # Song et al. 2021, eq. 12
        x0, _ = self.xstart_and_mean(out, xt, t, clip=True)
        a = self.col(self.abar, t)
        a_prev = np.where(t_prev >= 0, self.abar[np.maximum(t_prev, 0)], 1.0)[:, None]
        eps = (xt - np.sqrt(a) * x0) / np.sqrt(1 - a)
        sigma = eta * np.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        return np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma ** 2) * eps + sigma * z * (t_prev >= 0)[:, None]

    def prior(self, x0):
        last = np.full(x0.shape[0], self.T - 1)
        m = self.col(np.sqrt(self.abar), last) * x0
        lv = self.col(np.log(1 - self.abar), last)
        return gaussian_kl(m, lv, 0.0, 0.0).mean(axis=1) / math.log(2)


def gaussian_kl(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 / np.exp(lv2) - 1.0)


def approx_cdf(x):
    """The reference decoder's 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as the
    equal logistic 1 / (1 + exp(-2 sqrt(2/pi) (...))) so that small values keep their digits."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-2.0 * math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def decoder_log_prob(x, mean, log_scale):
    """log of the Gaussian mass of x's bin of width 2/255, open at -1 and 1, floored at 1e-12.
    Masses above the mean are differences of upper tails, 1 - F(u) = F(-u), not of CDF values
    near 1 (the same numbers, without the cancellation)."""
    s = np.exp(log_scale)
    upper, lower = (x - mean + HALF_BIN) / s, (x - mean - HALF_BIN) / s
    inner = np.where(x > mean, approx_cdf(-lower) - approx_cdf(-upper), approx_cdf(upper) - approx_cdf(lower))
    p = np.where(x < -0.999, approx_cdf(upper), np.where(x > 0.999, approx_cdf(-lower), inner))
    return np.log(np.maximum(p, 1e-12))


def central_difference(f, v, h):
    """d sum(f(v)) / dv elementwise, f returning per-example values."""
    g = np.zeros_like(v)
    for idx in np.ndindex(v.shape):
        vp, vm = v.copy(), v.copy()
        vp[idx] += h
        vm[idx] -= h
        g[idx] = (f(vp).sum() - f(vm).sum()) / (2 * h)
    return g


# --- the golden file ---------------------------------------------------------------------

def create_h5(path):
    """An HDF5 file without object timestamps (h5py datasets have none by default; the root
    and groups need it asked), so a rerun of the generator writes the same bytes."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)  # compact headers
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl))


def create_group(parent, path):
    """Creates each missing group of a/b/c, without timestamps."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    for part in path.split("/"):
        if part not in parent:
            h5py.h5g.create(parent.id, part.encode(), gcpl=gcpl)
        parent = parent[part]
    return parent


def f32(a):
    return np.asarray(a, dtype=np.float32)


def write_schedules(h5):
    """Per schedule and T: `index` (the timesteps kept) and `tables` [K, len(index)], one
    row per name in the comma-separated attribute `names` (one dataset keeps the file small)."""
    index1000 = np.unique(np.concatenate([np.arange(6), np.arange(0, 1000, 41), [997, 998, 999]]))
    for name in SCHEDULES:
        for T, idx in ((1000, index1000), (37, np.arange(37))):
            g = create_group(h5, f"schedules/{name}/T{T}")
            large = Process(beta_schedule(name, T), "eps", "fixedlarge")
            small = Process(beta_schedule(name, T), "eps", "fixedsmall")
            tables = dict(large.tables(), model_log_variance_fixedlarge=large.model_logvar,
                          model_log_variance_fixedsmall=small.model_logvar)
            g["index"] = idx.astype(np.int64)
            g["tables"] = np.stack([table[idx] for table in tables.values()])
            g.attrs["names"] = ",".join(tables.keys())


def write_process(h5, rng):
    """Single-step quantities on fixed inputs: N = 8 examples of 4x4x3 at the timesteps
    below, x_0 on the uint8 grid with pixels at -1 and 1 in every example. Example 1 has
    a poor model at t = 0, whose decoder probabilities are under the 1e-12 floor."""
    T, N, D = 1000, 8, 48
    t = np.array([0, 0, 1, 2, 37, 500, 998, 999])
    x0 = rng.integers(0, 256, size=(N, D)) / 127.5 - 1.0
    x0[:, 0], x0[:, 1] = -1.0, 1.0
    x0 = f32(x0)
    noise, z = f32(rng.standard_normal((N, D))), f32(rng.standard_normal((N, D)))
    base = Process(beta_schedule("linear", T))
    xt = f32(base.q_sample(x0.astype(np.float64), noise.astype(np.float64), t))
    # model errors scale with the noise level, as a trained model's
    err = rng.standard_normal((N, D))
    X0 = x0.astype(np.float64)
    outs = {  # plausible outputs of a trained model for each parameterisation
        "eps": noise + 0.3 * err,
        "xstart": X0 + 0.3 * np.sqrt(1 - base.abar[t])[:, None] * err,
        "xprev": base.posterior_mean(X0, xt.astype(np.float64), t)
                 + 0.3 * np.sqrt(base.post_var[np.maximum(t, 1)])[:, None] * err,
    }
    # Example 1 (t = 0): decoder means 7.3 to 8.3 sigma away from x_0, so every bin
    # probability is 1e-18..1e-14, under the 1e-12 floor, where the clamped gradient is 0
    # although the unclamped one is large (and far enough below it for finite differences).
    sigma0 = np.exp(0.5 * base.model_logvar[0])  # fixedlarge and fixedsmall agree at t = 0
    mean1 = X0[1] + np.sign(err[1]) * (7.3 + rng.random(D)) * sigma0
    outs["xstart"][1] = outs["xprev"][1] = mean1  # at t = 0, mu = x0_hat = out for both
    outs["eps"][1] = (xt[1] - np.sqrt(base.abar[0]) * mean1) / np.sqrt(1 - base.abar[0])
    outs = {k: f32(v) for k, v in outs.items()}
    g = create_group(h5, "process")
    for key, val in dict(t=t.astype(np.int64), x0=x0, noise=noise, x_t=xt, sample_noise=z).items():
        g[key] = val
    X0, XT, NOISE, Z = (a.astype(np.float64) for a in (x0, xt, noise, z))
    g["q_sample"] = f32(base.q_sample(X0, NOISE, t))
    g["q_mean"] = f32(base.col(np.sqrt(base.abar), t) * X0)
    g["q_log_variance"] = np.log(1 - base.abar[t])
    g["posterior_mean"] = f32(base.posterior_mean(X0, XT, t))
    g["posterior_variance"] = base.post_var[t]
    g["posterior_log_variance_clipped"] = base.post_logvar[t]
    g["prior_bpd"] = base.prior(X0)
    for mean_type in MEAN_TYPES:
        g[f"model_out_{mean_type}"] = outs[mean_type]
        for var_type in VAR_TYPES:
            p = Process(beta_schedule("linear", T), mean_type, var_type)
            out = outs[mean_type].astype(np.float64)
            c = create_group(g, f"{mean_type}_{var_type}")
            for clip in (False, True):
                sfx = "_clipped" if clip else ""
                x0_hat, mean = p.xstart_and_mean(out, XT, t, clip)
                c["pred_xstart" + sfx], c["p_mean" + sfx] = f32(x0_hat), f32(mean)
                c["vb_terms" + sfx] = p.vb_terms(out, X0, XT, t, clip)
            c["model_log_variance"] = p.model_logvar[t]
            c["p_sample"] = f32(p.p_sample(out, XT, Z, t))
            c["mse"] = p.mse(out, X0, XT, NOISE, t)
            # d (mean over the batch of the loss) / d out, by float64 central differences
            c["grad_kl"] = f32(central_difference(lambda o: p.vb_terms(o, X0, XT, t, False) / N, out, 1e-6))
            c["grad_mse"] = f32(central_difference(lambda o: p.mse(o, X0, XT, NOISE, t) / N, out, 1e-6))


def write_ddim(h5, rng):
    """DDIM steps on the 10-step "ddim10" subsequence 0, 100, ..., 900 of T = 1000."""
    T, N, D = 1000, 6, 48
    t = np.array([0, 100, 200, 500, 900, 900])
    t_prev = t - 100
    t_prev[0] = -1
    x0 = f32(rng.integers(0, 256, size=(N, D)) / 127.5 - 1.0)
    noise, z = f32(rng.standard_normal((N, D))), f32(rng.standard_normal((N, D)))
    base = Process(beta_schedule("linear", T))
    xt = f32(base.q_sample(x0.astype(np.float64), noise.astype(np.float64), t))
    err = rng.standard_normal((N, D))
    outs = {"eps": f32(noise + 0.5 * err), "xstart": f32(x0 + 0.3 * err)}
    g = create_group(h5, "ddim")
    for key, val in dict(t=t.astype(np.int64), t_prev=t_prev.astype(np.int64), x_t=xt, noise=z).items():
        g[key] = val
    for mean_type, out in outs.items():
        g[f"model_out_{mean_type}"] = out
        p = Process(beta_schedule("linear", T), mean_type)
        for eta in (0.0, 0.5, 1.0):
            g[f"{mean_type}_eta{eta:g}"] = f32(p.ddim(out.astype(np.float64), xt.astype(np.float64),
                                                      z.astype(np.float64), t, t_prev, eta))


def toy_model(xt, t):
    """A deterministic stand-in for the U-Net: out = tanh(x_t) (0.5 + 0.05 t), as float32."""
    return f32(np.tanh(xt.astype(np.float64)) * (0.5 + 0.05 * t))


def write_bpd(h5, rng):
    """The full bound (calc_bpd_loop) of a 10-step process with the toy model and given noise."""
    T, N, D = 10, 3, 12
    x0 = rng.integers(0, 256, size=(N, D)) / 127.5 - 1.0
    x0[:, 0], x0[:, 1] = -1.0, 1.0
    x0 = f32(x0)
    noise = f32(rng.standard_normal((T, N, D)))
    g = create_group(h5, "bpd")
    g["x0"], g["noise"] = x0, noise
    g.attrs["beta_start"], g.attrs["beta_end"] = 1e-3, 0.5
    for mean_type, var_type in (("eps", "fixedlarge"), ("xstart", "fixedsmall")):
        p = Process(beta_schedule("linear", T, 1e-3, 0.5), mean_type, var_type)
        terms, mse = np.zeros((N, T)), np.zeros((N, T))
        for step in range(T):
            tt = np.full(N, step)
            xt = f32(p.q_sample(x0.astype(np.float64), noise[step].astype(np.float64), tt))
            out = toy_model(xt, step).astype(np.float64)
            terms[:, step] = p.vb_terms(out, x0.astype(np.float64), xt.astype(np.float64), tt, clip=True)
            x0_hat, _ = p.xstart_and_mean(out, xt.astype(np.float64), tt, clip=True)
            mse[:, step] = ((x0_hat - x0) ** 2).mean(axis=1)
        prior = p.prior(x0.astype(np.float64))
        c = create_group(g, f"{mean_type}_{var_type}")
        c["terms_bpd"], c["mse"], c["prior_bpd"] = terms, mse, prior
        c["total_bpd"] = terms.sum(axis=1) + prior


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_diffusion.h5")
    rng = np.random.default_rng(20200619)
    with create_h5(path) as h5, np.errstate(divide="ignore"):  # jsd: 1 / abar_{T-1} = inf
        h5.attrs["generator"] = "tests/reference/make_diffusion_reference.py"
        write_schedules(h5)
        write_process(h5, rng)
        write_ddim(h5, rng)
        write_bpd(h5, rng)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
