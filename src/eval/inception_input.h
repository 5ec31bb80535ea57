// The Inception's input from uint8 images: a resize to 299x299 and the scaling to
// [-1, 1], in one of the three ways the reference evaluators do it (the FID of a set of
// images depends on which, by more than the differences between good models).
#pragma once

#include <cstdint>
#include <string>

namespace ddpm::eval {

enum class InceptionResize {
  // TF1's ResizeBilinear (align_corners=False and no half-pixel centres: source index =
  // destination index * in / out), then (x - 128) / 128: the TF Inception graph's own
  // preprocessing, as the paper, TTUR and OpenAI's evaluator ran it.
  kTf,
  // pytorch-fid: x / 255, bilinear with half-pixel centres (F.interpolate with
  // align_corners=False), then 2x - 1.
  kTorch,
  // clean-fid: PIL's bicubic resize (a = -0.5, the filter widened by the scale when
  // downscaling, i.e. antialiased) of each channel in float, clipped to [0, 255], then
  // (x - 128) / 128 (cleanfid/inception_torchscript.py).
  kPilBicubic,
};

// "tf", "torch" or "pil-bicubic"; an InputError naming `what` otherwise.
InceptionResize parse_inception_resize(const std::string& name, const std::string& what);
const char* inception_resize_name(InceptionResize mode);

constexpr int kInceptionInputSize = 299;

// out [299, 299, 3] (host, NHWC, in [-1, 1]) from image [H, W, C] (host, uint8), C 3
// (RGB) or 1 (grey, repeated to three channels).
void inception_input(float* out, const uint8_t* image, int H, int W, int C, InceptionResize mode);

}  // namespace ddpm::eval
