// Each mode computes in the arithmetic of the implementation it reproduces: TF's and
// PyTorch's bilinear kernels in float (with their own formulas, in their order), PIL's
// resampler with double coefficients and sums and a float image between its horizontal
// and vertical passes. This file is compiled without FMA contraction (CMakeLists.txt),
// so the tf mode gives the bits of TF's formula evaluated in float32.
#include "eval/inception_input.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/common.h"

namespace ddpm::eval {
namespace {

constexpr int kOut = kInceptionInputSize;

// The two source indices of an output index along one axis and the weight of the second.
struct LinearTap {
  int lower, upper;
  float lerp;
};

// TF1's legacy scaler: source = destination * (in / out), in float.
std::vector<LinearTap> tf_taps(int in) {
  const float scale = static_cast<float>(in) / static_cast<float>(kOut);
  std::vector<LinearTap> taps(kOut);
  for (int i = 0; i < kOut; ++i) {
    const float src = static_cast<float>(i) * scale;
    const float floor_src = std::floor(src);
    taps[i] = {std::max(static_cast<int>(floor_src), 0), std::min(static_cast<int>(std::ceil(src)), in - 1),
               src - floor_src};
  }
  return taps;
}

// PyTorch's align_corners=False source index: (destination + 0.5) * scale - 0.5, clamped
// at 0, with the scale in / out in float and the index in double (torch 1.13's CPU
// kernel, as measured against it: an index in float is off by up to 0.005 of a pixel
// step at 384 -> 299).
std::vector<LinearTap> torch_taps(int in) {
  const double scale = static_cast<float>(in) / static_cast<float>(kOut);
  std::vector<LinearTap> taps(kOut);
  for (int i = 0; i < kOut; ++i) {
    const double src = std::max(scale * (i + 0.5) - 0.5, 0.0);
    const int lower = static_cast<int>(src);
    const double lerp = std::min(std::max(src - lower, 0.0), 1.0);
    taps[i] = {lower, lower < in - 1 ? lower + 1 : lower, static_cast<float>(lerp)};
  }
  return taps;
}

// The image's channel c at (y, x) as a float; grey images repeat their one channel.
struct Pixels {
  const uint8_t* data;
  int H, W, C;
  float operator()(int y, int x, int c) const {
    return data[(static_cast<int64_t>(y) * W + x) * C + (C == 1 ? 0 : c)];
  }
};

void resize_tf(float* out, const Pixels& px) {
  const std::vector<LinearTap> ty = tf_taps(px.H), tx = tf_taps(px.W);
  for (int y = 0; y < kOut; ++y)
    for (int x = 0; x < kOut; ++x)
      for (int c = 0; c < 3; ++c) {
        const LinearTap &ry = ty[y], &rx = tx[x];
        const float top_left = px(ry.lower, rx.lower, c), top_right = px(ry.lower, rx.upper, c);
        const float bottom_left = px(ry.upper, rx.lower, c), bottom_right = px(ry.upper, rx.upper, c);
        const float top = top_left + (top_right - top_left) * rx.lerp;
        const float bottom = bottom_left + (bottom_right - bottom_left) * rx.lerp;
        const float v = top + (bottom - top) * ry.lerp;
        out[(static_cast<int64_t>(y) * kOut + x) * 3 + c] = (v - 128.0f) / 128.0f;
      }
}

void resize_torch(float* out, const Pixels& px) {
  const std::vector<LinearTap> ty = torch_taps(px.H), tx = torch_taps(px.W);
  auto unit = [&](int y, int x, int c) { return px(y, x, c) / 255.0f; };  // ToTensor
  for (int y = 0; y < kOut; ++y)
    for (int x = 0; x < kOut; ++x)
      for (int c = 0; c < 3; ++c) {
        const LinearTap &ry = ty[y], &rx = tx[x];
        const float wx0 = 1.0f - rx.lerp, wy0 = 1.0f - ry.lerp;
        // PyTorch's order: the rows' interpolations along x, then along y.
        const float top = unit(ry.lower, rx.lower, c) * wx0 + unit(ry.lower, rx.upper, c) * rx.lerp;
        const float bottom = unit(ry.upper, rx.lower, c) * wx0 + unit(ry.upper, rx.upper, c) * rx.lerp;
        const float v = top * wy0 + bottom * ry.lerp;
        out[(static_cast<int64_t>(y) * kOut + x) * 3 + c] = 2.0f * v - 1.0f;
      }
}

// PIL's bicubic kernel (a = -0.5), support 2.
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The source taps [first, first + weights.size()) of one output index and their
// normalised weights, as PIL's resampler computes them: the kernel is stretched by the
// scale when downscaling, and the window rounds its ends to the nearest pixels.
struct CubicTaps {
  int first = 0;
  std::vector<double> weights;
};

std::vector<CubicTaps> pil_bicubic_taps(int in) {
  const double scale = static_cast<double>(in) / kOut;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale, inverse_scale = 1.0 / filter_scale;
  std::vector<CubicTaps> taps(kOut);
  for (int i = 0; i < kOut; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in);
    CubicTaps& t = taps[i];
    t.first = lo;
    double total = 0.0;
    for (int j = lo; j < hi; ++j) {
      t.weights.push_back(bicubic((j - center + 0.5) * inverse_scale));
      total += t.weights.back();
    }
    if (total != 0.0) {
      for (double& w : t.weights) w /= total;
    }
  }
  return taps;
}

void resize_pil_bicubic(float* out, const Pixels& px) {
  const std::vector<CubicTaps> ty = pil_bicubic_taps(px.H), tx = pil_bicubic_taps(px.W);
  // Horizontal pass into a float image [H, 299, 3], then the vertical pass.
  std::vector<float> rows(static_cast<size_t>(px.H) * kOut * 3);
  for (int y = 0; y < px.H; ++y)
    for (int x = 0; x < kOut; ++x)
      for (int c = 0; c < 3; ++c) {
        double sum = 0.0;
        for (size_t k = 0; k < tx[x].weights.size(); ++k) {
          sum += px(y, tx[x].first + static_cast<int>(k), c) * tx[x].weights[k];
        }
        rows[(static_cast<size_t>(y) * kOut + x) * 3 + c] = static_cast<float>(sum);
      }
  for (int y = 0; y < kOut; ++y)
    for (int x = 0; x < kOut; ++x)
      for (int c = 0; c < 3; ++c) {
        double sum = 0.0;
        for (size_t k = 0; k < ty[y].weights.size(); ++k) {
          sum += rows[((static_cast<size_t>(ty[y].first) + k) * kOut + x) * 3 + c] * ty[y].weights[k];
        }
        const float v = std::min(std::max(static_cast<float>(sum), 0.0f), 255.0f);
        // clean-fid's InceptionV3W: (x - 128) / 128, in float.
        out[(static_cast<int64_t>(y) * kOut + x) * 3 + c] = (v - 128.0f) / 128.0f;
      }
}

}  // namespace

InceptionResize parse_inception_resize(const std::string& name, const std::string& what) {
  if (name == "tf") return InceptionResize::kTf;
  if (name == "torch") return InceptionResize::kTorch;
  if (name == "pil-bicubic") return InceptionResize::kPilBicubic;
  input_error(what, ": unknown resize mode '", name, "' (tf, torch or pil-bicubic)");
}

const char* inception_resize_name(InceptionResize mode) {
  switch (mode) {
    case InceptionResize::kTf: return "tf";
    case InceptionResize::kTorch: return "torch";
    case InceptionResize::kPilBicubic: return "pil-bicubic";
  }
  return "?";
}

void inception_input(float* out, const uint8_t* image, int H, int W, int C, InceptionResize mode) {
  DDPM_CHECK(H > 0 && W > 0 && (C == 1 || C == 3), "an image of ", H, "x", W, "x", C);
  const Pixels px{image, H, W, C};
  switch (mode) {
    case InceptionResize::kTf: return resize_tf(out, px);
    case InceptionResize::kTorch: return resize_torch(out, px);
    case InceptionResize::kPilBicubic: return resize_pil_bicubic(out, px);
  }
}

}  // namespace ddpm::eval
