// The scratch slots of a backend (CpuOps::scratch, CudaOps::scratch): buffers that grow to
// the largest request and never shrink, so that after the first step nothing is allocated
// on the hot path. A method may use several slots, but two methods that can be active at
// once (one calling the other) never share one. Both backends use the same names for the
// same purposes; a slot a backend does not need simply stays empty.
#pragma once

namespace ddpm {

enum ScratchSlot : int {
  kSlotWorkspace = 0,  // the library's workspace: oneDNN user scratchpad, cuDNN workspace
  kSlotConvIn,         // padded (CUDA) and/or bf16 copy of a convolution input
  kSlotConvOut,        // a convolution result before it is widened, added or reordered:
                       // bf16 output, din before +=, dw in the library's filter layout
  kSlotConvGrad,       // bf16 copy of a convolution's dout
  kSlotGemmA,          // bf16 copies of GEMM operands
  kSlotGemmB,
  kSlotReducePartial,  // per-chunk partial sums (double)
  kSlotReduceTotal,    // per-(n, c) totals (double)
  kSlotNormCoef,       // GroupNorm per-(n, c) coefficients
  kSlotAttnScores,     // attention ds [L, L] per image (CPU) or [N, L, L] (CUDA)
  kSlotCoefs,          // per-example diffusion coefficients uploaded from the host (CUDA)
  kSlotBytes,          // uint8 images uploaded from the host (CUDA)
  kSlotSumSquares,     // sum_squares partials and result
  kSlotCount
};

}  // namespace ddpm
