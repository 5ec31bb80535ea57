#include "core/cpu/cpu_ops.h"

#include <omp.h>
#include <xmmintrin.h>

#include <cstdio>
#include <cstring>

#include "core/common.h"
#include "core/library_calls.h"
#include "core/params.h"

namespace ddpm {

void enable_flush_denormals() {
  // MXCSR bit 15: flush to zero, bit 6: denormals are zero.
  _mm_setcsr(_mm_getcsr() | 0x8040);
#pragma omp parallel
  { _mm_setcsr(_mm_getcsr() | 0x8040); }
}

namespace {

Precision cpu_precision(Precision asked) {
  if (asked == Precision::kTf32) {
    input_error("device.precision: tf32 is a GPU mode; the CPU backend computes in fp32 or bf16");
  }
  if (asked != Precision::kBf16) return asked;
  switch (cpu_bf16_support()) {
    case CpuBf16Support::kAmx: return asked;
    case CpuBf16Support::kAvx512Bf16:
      // vdpbf16ps retires as often as an fp32 FMA on AMD Zen 5 (bf16 trained faster than
      // fp32 there) but half as often on the Intel Xeon measured (bench/bench_isa_peak).
      if (!cpu_is_amd()) {
        std::fprintf(stderr,
                     "ddpm: device.precision bf16: this CPU has AVX512-BF16 but no AMX (oneDNN ISA %s); on the Intel "
                     "CPUs measured without AMX, oneDNN's bf16 products ran slower than fp32 (docs/performance.md)\n",
                     cpu_isa_name());
      }
      return asked;
    case CpuBf16Support::kNone: break;
  }
  std::fprintf(stderr, "ddpm: device.precision bf16: this CPU has no bf16 instructions (oneDNN ISA %s); running fp32\n",
               cpu_isa_name());
  return Precision::kFp32;
}

}  // namespace

CpuOps::CpuOps(int threads, Precision precision, bool winograd)
    : precision_(cpu_precision(precision)), winograd_(winograd), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
  if (threads > 0) omp_set_num_threads(threads);
  enable_flush_denormals();
  scratch_.resize(kSlotCount);
}

CpuOps::~CpuOps() {
  for (Scratch& s : scratch_) std::free(s.p);
}

std::unique_ptr<Ops> make_cpu_ops(int threads, Precision precision, bool winograd) {
  return std::make_unique<CpuOps>(threads, precision, winograd);
}

CpuOps::PrimitiveArgs CpuOps::primitive_args(const std::unordered_map<int, dnnl::memory>& args) {
  PrimitiveArgs c_args;
  for (const auto& [kind, mem] : args) c_args.push_back({kind, mem.get()});
  return c_args;
}

void CpuOps::run_primitive(const dnnl::primitive& p, const PrimitiveArgs& args) {
  const LibraryCall in_onednn(Library::kOneDnn);
  dnnl::error::wrap_c_api(
      dnnl_primitive_execute(p.get(), stream_.get(), static_cast<int>(args.size()), args.data()),
      "could not execute a primitive");
  stream_.wait();
}

float* CpuOps::alloc(int64_t n) { return alloc_host_floats(n).release(); }

void CpuOps::release(float* p) { std::free(p); }

void CpuOps::zero(float* p, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 4096) std::memset(p + i, 0, sizeof(float) * std::min<int64_t>(4096, n - i));
}

void CpuOps::copy(float* dst, const float* src, int64_t n) {
  if (dst == src) return;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 4096) std::memcpy(dst + i, src + i, sizeof(float) * std::min<int64_t>(4096, n - i));
}

void* CpuOps::scratch(int slot, size_t bytes) {
  Scratch& s = scratch_.at(static_cast<size_t>(slot));
  if (s.bytes < bytes || !s.p) {
    std::free(s.p);
    s.p = alloc_host_floats(static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))).release();
    s.bytes = bytes;
  }
  return s.p;
}

void CpuOps::add_inplace(float* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void CpuOps::concat_channels(float* out, const float* a, const float* b, int64_t M, int Ca, int Cb) {
  const int C = Ca + Cb;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(out + m * C, a + m * Ca, sizeof(float) * Ca);
    std::memcpy(out + m * C + Ca, b + m * Cb, sizeof(float) * Cb);
  }
}

void CpuOps::split_channels(float* da, float* db, const float* dout, int64_t M, int Ca, int Cb) {
  const int C = Ca + Cb;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(da + m * Ca, dout + m * C, sizeof(float) * Ca);
    std::memcpy(db + m * Cb, dout + m * C + Ca, sizeof(float) * Cb);
  }
}

void CpuOps::copy_channels(float* out, int out_ch, int out_first, const float* in, int in_ch, int in_first,
                           int count, int64_t M) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(out + m * out_ch + out_first, in + m * in_ch + in_first, sizeof(float) * count);
  }
}

void CpuOps::nchw_to_nhwc(float* out, const float* in, int N, int C, int H, int W) {
  const int64_t HW = static_cast<int64_t>(H) * W;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int64_t p = 0; p < HW; ++p)
      for (int c = 0; c < C; ++c) out[(n * HW + p) * C + c] = in[(static_cast<int64_t>(n) * C + c) * HW + p];
}

void CpuOps::nhwc_to_nchw(float* out, const float* in, int N, int C, int H, int W) {
  const int64_t HW = static_cast<int64_t>(H) * W;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int64_t p = 0; p < HW; ++p) out[(static_cast<int64_t>(n) * C + c) * HW + p] = in[(n * HW + p) * C + c];
}

}  // namespace ddpm
