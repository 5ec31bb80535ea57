// The multi-step training golden (issue 24), after llm.c's test_gpt2: ten steps of the
// real TrainStep on one rank — the loader's batch, t and ε from the keyed RNG, forward
// with dropout, L_simple, backward, the global-norm clip, Adam with warm-up, the EMA —
// against the same ten steps in PyTorch (tests/reference/make_train_golden.py) from the
// same weights and data. test_golden checks the U-Net's gradients and test_optim the
// optimizer, each alone; this checks what only their composition can get wrong (the
// warm-up's index, the clip's factor, the EMA's order, the dropout streams, the loss's
// scale), step by step and in the final state.
//
// ddpm's side goes to PyTorch, not the reverse: the test writes the config, the initial
// weights and each step's batch as ddpm's loader gave it (shuffled over three epochs,
// flipped); the script draws t, ε and the dropout masks with philox.py, the port of
// core/rng.h's streams, so the golden also holds the step to that contract.
#define BOOST_TEST_MODULE golden_train
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/common.h"
#include "core/config.h"
#include "core/h5.h"
#include "core/params.h"
#include "io/weights_io.h"
#include "data/loader.h"
#include "fixtures.h"
#include "golden_weights.h"
#include "one_rank_training.h"
#include "python_reference.h"

namespace ddpm {
namespace {

constexpr int kSteps = 10;
constexpr int kImages = 12;  // 3 batches an epoch: the ten steps cross three reshuffles

// Every layer kind at 8x8 (attention, conv resampling, nin_shortcut on the up path) with
// two channels per GroupNorm group, so the time embedding has real gradients. Dropout
// 0.3; updates 1..5 ramp the learning rate 0, 1/4, 1/2, 3/4, 1 and 5..10 run at the full
// rate; the clip at 4 scales steps 1-6 and 8 (gradient norms 4.1 to 6.7) and leaves
// steps 7, 9 and 10 (3.6 to 2.6) as the loss falls; an EMA decay of 0.8 moves the shadow
// far enough from the initial weights to compare.
constexpr const char* kConfig = R"(
data:
  random_flip: true
  prefetch_batches: 2
model:
  resolution: 8
  in_channels: 3
  out_ch: 3
  ch: 64
  ch_mult: [1, 1]
  num_res_blocks: 1
  attn_resolutions: [4]
  dropout: 0.3
  resamp_with_conv: true
train:
  batch_size: 4
  total_steps: 10
  lr: 0.001
  warmup_steps: 4
  grad_clip: 4.0
  ema_decay: 0.8
  seed: 7
device:
  kind: cpu
)";

// Relative tolerances (the measured errors in docs/testing.md are 11x to 40x below). A
// step's loss and gradient norm see the float32 roundings of one forward and backward
// pass, over weights that already carry the earlier steps' rounding differences
// (PyTorch sums in other orders).
constexpr double kLossTol = 1e-5;
constexpr double kNormTol = 1e-5;
// The final state against how far training moved it: parameters and EMA relative to
// ||PyTorch's - initial||, Adam's moments relative to their norms.
constexpr double kStateTol = 1e-4;
// A tensor whose gradient is zero analytically (an attention's k.bias shifts every logit
// of a row alike) holds roundoff in both implementations, ~1e-11, which Adam turns into
// steps of lr·g/eps in random directions: it is not compared with PyTorch's, but must
// stay near its start as PyTorch's does (a real gradient would move it by ~lr·sqrt(n) a
// step, 2e-2 of the whole training's move here). Such tensors are told apart by
// PyTorch's second moment: the RMS of sqrt(v) below kZeroGradRatio times that of all
// tensors (measured: under 1e-7 for the k.biases, above 0.07 for the rest).
constexpr double kZeroGradRatio = 1e-5;
constexpr double kZeroGradDriftTol = 3e-3;

// ||a - b|| (b null: ||a||), summed in double.
double distance(const float* a, const float* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - (b ? b[i] : 0.0);
    sum += d * d;
  }
  return std::sqrt(sum);
}

double relative(double got, double want) { return std::fabs(got - want) / std::fabs(want); }

std::vector<double> read_f64s(const h5::File& f, const std::string& name, int64_t n) {
  BOOST_REQUIRE_EQUAL(f.info(name).numel(), n);
  std::vector<double> v(static_cast<size_t>(n));
  f.read_f64(name, v.data(), n);
  return v;
}

// Writes what the PyTorch side needs from ddpm: the config, the initial weights and the
// kSteps batches of the loader the step reads (a second loader with the same options
// gives the same stream).
void write_inputs(const std::string& path, const testing::OneRankTraining& run, const float* initial) {
  h5::File f = h5::File::create(path);
  f.write_attr_str("/", "config_yaml", run.config.to_yaml());
  write_param_group(f, "params", run.net.layout(), initial);
  data::LoaderOptions lo = data::loader_options(run.config, 0, 1);
  lo.prefetch_batches = 0;
  data::Loader loader(lo);
  std::vector<int64_t> pixels;
  for (int s = 0; s < kSteps; ++s) {
    const data::Batch b = loader.next();
    pixels.insert(pixels.end(), b.pixels.begin(), b.pixels.end());
  }
  const data::DatasetInfo& info = loader.info();
  f.write_i64("pixels", pixels.data(), {kSteps, run.config.train.batch_size, info.height, info.width, info.channels});
}

struct StepRecord {
  std::vector<double> loss, grad_norm, lr;
};

StepRecord run_steps(testing::OneRankTraining& run) {
  StepRecord rec;
  TrainState state;
  for (int s = 0; s < kSteps; ++s) {
    rec.lr.push_back(run.optimizer.learning_rate(state.step));  // of the update this step applies
    const StepResult r = run.step->run(state);
    BOOST_REQUIRE(r.applied);
    rec.loss.push_back(r.stats[kLossSum] / run.config.train.batch_size);
    rec.grad_norm.push_back(r.grad_norm);
  }
  return rec;
}

void check_steps(const StepRecord& got, const h5::File& f, const TrainConfig& tc) {
  const StepRecord ref{read_f64s(f, "loss", kSteps), read_f64s(f, "grad_norm", kSteps), read_f64s(f, "lr", kSteps)};
  // The config must exercise what the golden is for: a first update at learning rate 0,
  // the full rate, clipped and unclipped steps, and a loss that falls.
  const double clip = tc.grad_clip;
  BOOST_REQUIRE(ref.lr.front() == 0 && ref.lr.back() == tc.lr);
  BOOST_REQUIRE(std::any_of(ref.grad_norm.begin(), ref.grad_norm.end(), [&](double n) { return n > clip; }));
  BOOST_REQUIRE(std::any_of(ref.grad_norm.begin(), ref.grad_norm.end(), [&](double n) { return n < clip; }));
  BOOST_REQUIRE(ref.loss.back() < 0.8 * ref.loss.front());

  double worst_loss = 0, worst_norm = 0;
  for (int s = 0; s < kSteps; ++s) {
    const double loss_err = relative(got.loss[s], ref.loss[s]), norm_err = relative(got.grad_norm[s], ref.grad_norm[s]);
    worst_loss = std::max(worst_loss, loss_err);
    worst_norm = std::max(worst_norm, norm_err);
    BOOST_TEST_MESSAGE("step " << s + 1 << ": loss " << got.loss[s] << " (PyTorch " << ref.loss[s] << ", error "
                               << loss_err << "), gradient norm " << got.grad_norm[s] << " (" << ref.grad_norm[s]
                               << ", " << norm_err << ")" << (ref.grad_norm[s] > clip ? " clipped" : "") << ", lr "
                               << got.lr[s]);
    BOOST_CHECK_MESSAGE(loss_err <= kLossTol, "step " << s + 1 << ": loss " << got.loss[s] << " vs PyTorch "
                                                      << ref.loss[s] << " (relative error " << loss_err << ")");
    BOOST_CHECK_MESSAGE(norm_err <= kNormTol, "step " << s + 1 << ": gradient norm " << got.grad_norm[s]
                                                      << " vs PyTorch " << ref.grad_norm[s] << " (relative error "
                                                      << norm_err << ")");
    BOOST_CHECK_MESSAGE(relative(got.lr[s], ref.lr[s]) <= 1e-12 || got.lr[s] == ref.lr[s],
                        "step " << s + 1 << ": learning rate " << got.lr[s] << " vs PyTorch " << ref.lr[s]);
  }
  BOOST_TEST_MESSAGE("worst step errors: loss " << worst_loss << ", gradient norm " << worst_norm);
}

// ||a - b|| over the tensors of `layout` whose entry in `selected` is true (b null: ||a||).
double distance_over(const ParamLayout& layout, const std::vector<bool>& selected, const float* a, const float* b) {
  double sum = 0;
  for (size_t k = 0; k < selected.size(); ++k) {
    if (!selected[k]) continue;
    const ParamInfo& p = layout.params()[k];
    const double d = distance(a + p.offset, b ? b + p.offset : nullptr, p.numel);
    sum += d * d;
  }
  return std::sqrt(sum);
}

// The tensors whose gradient is zero up to roundoff, by PyTorch's second moment v.
std::vector<bool> zero_gradient_tensors(const ParamLayout& layout, const float* ref_v) {
  auto rms_sqrt_v = [&](int64_t offset, int64_t n) {
    double s = 0;
    for (int64_t i = offset; i < offset + n; ++i) s += ref_v[i];
    return std::sqrt(s / static_cast<double>(n));
  };
  const double overall = rms_sqrt_v(0, layout.size());
  std::vector<bool> zero;
  double smallest_compared = 1e30, largest_zero = 0;
  for (const ParamInfo& p : layout.params()) {
    const double ratio = rms_sqrt_v(p.offset, p.numel) / overall;
    zero.push_back(ratio < kZeroGradRatio);
    if (zero.back()) {
      largest_zero = std::max(largest_zero, ratio);
    } else {
      smallest_compared = std::min(smallest_compared, ratio);
    }
  }
  BOOST_TEST_MESSAGE("RMS of sqrt(v) of a tensor / of all: compared tensors >= "
                     << smallest_compared << ", zero-gradient ones <= " << largest_zero);
  return zero;
}

struct FinalState {
  HostFloats params, ema, m, v;
};

// PyTorch's final state (from its file) and ddpm's (from the backend), in the flat layout.
FinalState reference_state(const h5::File& f, const ParamLayout& layout) {
  auto read = [&](const char* group) {
    HostFloats h = alloc_host_floats(layout.size());
    read_param_group(f, group, layout, h.get());
    return h;
  };
  return FinalState{read("params"), read("ema"), read("m"), read("v")};
}

FinalState trained_state(const testing::OneRankTraining& run) {
  auto download = [&](const Buffer& b) {
    HostFloats h = alloc_host_floats(b.size());
    run.ops->download(h.get(), b.get(), b.size());
    return h;
  };
  const ModelBuffers& b = run.buffers;
  FinalState s{download(b.params), download(b.ema), download(b.m), download(b.v)};
  run.ops->synchronize();
  return s;
}

void check_final_state(const FinalState& got, const FinalState& ref, const float* initial, const ParamLayout& layout) {
  const int64_t P = layout.size();
  const std::vector<bool> zero = zero_gradient_tensors(layout, ref.v.get());
  std::vector<bool> real(zero.size());
  std::string zero_names;
  for (size_t k = 0; k < zero.size(); ++k) {
    real[k] = !zero[k];
    if (zero[k]) zero_names += " " + layout.params()[k].name;
  }
  // Nearly every tensor must be compared, or the golden would prove little.
  BOOST_REQUIRE(std::count(zero.begin(), zero.end(), true) * 20 < static_cast<int64_t>(zero.size()));

  const double moved = distance_over(layout, real, ref.params.get(), initial);
  const double ema_moved = distance_over(layout, real, ref.ema.get(), initial);
  BOOST_TEST_MESSAGE("training moved the parameters by " << moved << " (of " << distance(initial, nullptr, P)
                                                         << "), the EMA by " << ema_moved);
  const std::pair<std::string, double> errors[] = {
      {"parameters", distance_over(layout, real, got.params.get(), ref.params.get()) / moved},
      {"EMA", distance_over(layout, real, got.ema.get(), ref.ema.get()) / ema_moved},
      {"Adam m", distance(got.m.get(), ref.m.get(), P) / distance(ref.m.get(), nullptr, P)},
      {"Adam v", distance(got.v.get(), ref.v.get(), P) / distance(ref.v.get(), nullptr, P)},
  };
  for (const auto& [what, error] : errors) {
    BOOST_TEST_MESSAGE("final " << what << ": relative error " << error);
    BOOST_CHECK_MESSAGE(error <= kStateTol,
                        "final " << what << " differ from PyTorch's: relative error " << error << " > " << kStateTol);
  }
  // Where the parameters' difference sits: the tensors with most of it.
  std::vector<std::pair<double, std::string>> by_tensor;
  for (size_t k = 0; k < real.size(); ++k) {
    const ParamInfo& p = layout.params()[k];
    if (real[k]) {
      by_tensor.emplace_back(distance(got.params.get() + p.offset, ref.params.get() + p.offset, p.numel), p.name);
    }
  }
  std::sort(by_tensor.rbegin(), by_tensor.rend());
  std::string largest;
  for (size_t i = 0; i < std::min<size_t>(3, by_tensor.size()); ++i) {
    largest += cat(" ", by_tensor[i].second, " ", by_tensor[i].first / moved);
  }
  BOOST_TEST_MESSAGE("largest parameter differences (relative to the move):" << largest);

  const double drift = distance_over(layout, zero, got.params.get(), initial) / moved;
  BOOST_TEST_MESSAGE("zero-gradient tensors (not compared):"
                     << zero_names << "; moved " << drift << " (PyTorch's "
                     << distance_over(layout, zero, ref.params.get(), initial) / moved << ")");
  BOOST_CHECK_MESSAGE(drift <= kZeroGradDriftTol, "tensors with a zero gradient in PyTorch moved by "
                                                      << drift << " of the training's move, > " << kZeroGradDriftTol);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ten_training_steps_match_pytorch) {
  boost::unit_test::unit_test_log.set_threshold_level(boost::unit_test::log_messages);
  testing::TempDir dir;
  testing::write_synthetic_dataset(dir / "data", kImages, data::ImageShape{8, 8, 3}, 2);
  const Config cfg = parse_config(kConfig, "test_golden_train", {"data.path=" + dir / "data"});
  testing::OneRankTraining run(cfg, 2);
  const ParamLayout& layout = run.net.layout();
  // The golden weights are full-scale everywhere (the paper's init zeroes conv2,
  // proj_out and conv_out), so every tensor gets a real gradient from the first step.
  HostFloats initial = alloc_host_floats(layout.size());
  testing::fill_golden_weights(layout, initial.get());
  run.load_weights(initial.get());

  const std::string inputs = dir / "inputs.h5", reference = dir / "pytorch.h5";
  write_inputs(inputs, run, initial.get());
  BOOST_TEST_MESSAGE(test::run_python_script("tests/reference/make_train_golden.py", inputs + " " + reference));

  const StepRecord steps = run_steps(run);
  const h5::File f = h5::File::open_read(reference);
  check_steps(steps, f, cfg.train);
  check_final_state(trained_state(run), reference_state(f, layout), initial.get(), layout);
}

}  // namespace ddpm
