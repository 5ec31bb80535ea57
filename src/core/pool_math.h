// The in-bounds taps of one pooling window (PoolSpec, core/ops.h), written once for the
// CPU (cpu/pooling.cpp) and CUDA (cuda/pooling.cu) kernels: both visit them in the same
// order (rows, then columns), so a max and a float sum come out the same on both.
#pragma once

#include "core/host_device.h"
#include "core/ops.h"

namespace ddpm {

// Rows [y0, y1) and columns [x0, x1) of the input under the window of output (oy, ox).
struct PoolWindow {
  int y0, y1, x0, x1;
  DDPM_HOST_DEVICE int taps() const { return (y1 - y0) * (x1 - x0); }
};

DDPM_HOST_DEVICE inline PoolWindow pool_window(const PoolSpec& s, int oy, int ox) {
  const int top = oy * s.stride - s.pad, left = ox * s.stride - s.pad;
  PoolWindow w;
  w.y0 = top > 0 ? top : 0;
  w.y1 = top + s.K < s.H ? top + s.K : s.H;
  w.x0 = left > 0 ? left : 0;
  w.x1 = left + s.K < s.W ? left + s.K : s.W;
  return w;
}

}  // namespace ddpm
