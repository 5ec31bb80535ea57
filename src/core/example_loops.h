// The loops of the host diffusion code (core/diffusion.cpp, cpu/diffusion.cpp) over a
// batch [N, D]: every element (pure maps), or one example per iteration (per-example
// sums, each summed in a fixed order by one thread, so the bits do not depend on the
// number of threads).
#pragma once

#include <cstdint>

namespace ddpm {

template <class F>
void for_each_element(int N, int64_t D, const F& f) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; ++n)
    for (int64_t i = 0; i < D; ++i) f(n, static_cast<int64_t>(n) * D + i);
}

template <class F>
void for_each_example(int N, const F& f) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) f(n);
}

}  // namespace ddpm
