// How a backend computes its convolutions and matrix products (device.precision). Every
// buffer the Ops interface sees stays fp32 in every mode (docs/gpu.md, docs/performance.md):
//   fp32  IEEE single precision throughout (the reference).
//   tf32  the GPU's TF32 tensor cores on fp32 buffers (CUDA only).
//   bf16  autocast semantics: the products' inputs are rounded to bf16 copies and
//         accumulate in fp32; normalisation, softmax, the loss, the optimizer and every
//         reduction stay fp32.
#pragma once

#include <string>

namespace ddpm {

enum class Precision { kFp32, kTf32, kBf16 };

Precision parse_precision(const std::string& name);  // InputError for anything else
const char* precision_name(Precision p);

}  // namespace ddpm
