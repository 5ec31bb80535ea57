// Checked calls into the CUDA runtime, cuBLAS and cuDNN: a failure throws ddpm::Error
// naming the file, the line, the call and the library's own error string.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/common.h"

namespace ddpm {

inline void check_cuda(cudaError_t rc, const char* call, const char* file, int line) {
  if (rc == cudaSuccess) return;
  throw Error(cat(file, ":", line, ": ", call, " failed: ", cudaGetErrorName(rc), ": ", cudaGetErrorString(rc)));
}

inline void check_cudnn(cudnnStatus_t rc, const char* call, const char* file, int line) {
  if (rc == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  throw Error(cat(file, ":", line, ": ", call, " failed: ", cudnnGetErrorString(rc), " ", detail));
}

inline void check_cublas(cublasStatus_t rc, const char* call, const char* file, int line) {
  if (rc == CUBLAS_STATUS_SUCCESS) return;
  throw Error(cat(file, ":", line, ": ", call, " failed: ", cublasGetStatusName(rc), ": ", cublasGetStatusString(rc)));
}

}  // namespace ddpm

#define DDPM_CHECK_CUDA(call) ::ddpm::check_cuda((call), #call, __FILE__, __LINE__)
#define DDPM_CHECK_CUDNN(call) ::ddpm::check_cudnn((call), #call, __FILE__, __LINE__)
#define DDPM_CHECK_CUBLAS(call) ::ddpm::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad configuration is reported here, at its launch site.
#define DDPM_CHECK_LAUNCH() ::ddpm::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
