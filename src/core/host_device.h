// DDPM_HOST_DEVICE marks inline functions that the host code and the CUDA kernels share
// (core/rng.h, core/diffusion_math.h, core/groupnorm_math.h): one definition of each
// formula for both backends.
#pragma once

#if defined(__CUDACC__)
#define DDPM_HOST_DEVICE __host__ __device__
#else
#define DDPM_HOST_DEVICE
#endif
