#include "data/resize.h"

#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm::data {
namespace {

// For each output coordinate: the first source coordinate and the normalised weights of
// the source coordinates it averages.
struct Taps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // [out_size, max_taps]
  int max_taps = 0;
};

Taps make_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;  // source pixels per output pixel
  const double support = std::max(scale, 1.0);                   // tent half-width in source pixels
  Taps t;
  t.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.max_taps, 0.0f);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;  // in continuous source coordinates
    const int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    const int hi = std::min(in_size, static_cast<int>(std::ceil(center + support)));
    double total = 0.0;
    std::vector<double> w;
    for (int x = lo; x < hi; ++x) {
      const double d = std::fabs((x + 0.5 - center) / support);
      w.push_back(std::max(0.0, 1.0 - d));
      total += w.back();
    }
    DDPM_CHECK(total > 0.0 && static_cast<int>(w.size()) <= t.max_taps);
    t.first[o] = lo;
    t.count[o] = static_cast<int>(w.size());
    for (size_t k = 0; k < w.size(); ++k) t.weights[o * t.max_taps + k] = static_cast<float>(w[k] / total);
  }
  return t;
}

uint8_t to_u8(float v) { return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, std::nearbyint(v)))); }

}  // namespace

Image center_crop_resize(const Image& image, int side) {
  DDPM_CHECK(side > 0 && image.height > 0 && image.width > 0);
  const int crop = std::min(image.height, image.width);
  const int y0 = (image.height - crop) / 2, x0 = (image.width - crop) / 2;
  const int c = image.channels;
  if (crop == image.height && crop == image.width && crop == side) return image;

  // Horizontal pass over the crop's rows: [crop, side, c] floats.
  const Taps tx = make_taps(crop, side);
  std::vector<float> rows(static_cast<size_t>(crop) * side * c);
  for (int y = 0; y < crop; ++y) {
    const uint8_t* src = image.pixels.data() + (int64_t{y0 + y} * image.width + x0) * c;
    float* dst = rows.data() + int64_t{y} * side * c;
    for (int o = 0; o < side; ++o) {
      const float* w = tx.weights.data() + int64_t{o} * tx.max_taps;
      for (int ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (int k = 0; k < tx.count[o]; ++k) acc += w[k] * src[(tx.first[o] + k) * c + ch];
        dst[o * c + ch] = acc;
      }
    }
  }
  // Vertical pass into the output: [side, side, c].
  const Taps ty = make_taps(crop, side);
  Image out;
  out.height = out.width = side;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(side) * side * c);
  const int64_t row_len = int64_t{side} * c;
  std::vector<float> acc(static_cast<size_t>(row_len));
  for (int o = 0; o < side; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const float* w = ty.weights.data() + int64_t{o} * ty.max_taps;
    for (int k = 0; k < ty.count[o]; ++k) {
      const float* src = rows.data() + (ty.first[o] + k) * row_len;
      for (int64_t i = 0; i < row_len; ++i) acc[i] += w[k] * src[i];
    }
    for (int64_t i = 0; i < row_len; ++i) out.pixels[o * row_len + i] = to_u8(acc[i]);
  }
  return out;
}

}  // namespace ddpm::data
