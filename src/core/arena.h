// Activation memory for one batch size, taken from a single backend allocation.
// Layers describe what they need in plan(); the model runs the plan twice: once to
// measure, once (after the allocation) to hand out pointers. Shared slots are
// temporaries that only live within one layer's backward; they take the largest size
// asked for.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ops.h"

namespace ddpm {

// The arena's shared slots, in one place: the temporaries of one node's backward
// (blocks.cpp), a residual block's inner activations when they are not kept
// (PlanMode: forward only, or recomputed in backward), then the slots that Graph plans
// (graph.cpp): the gradients', or in a forward-only plan that shares memory the values'.
enum ArenaSlot : int {
  kBlockScratch0,
  kBlockScratch1,
  kBlockScratch2,
  kBlockScratch3,
  kBlockInner0,
  kBlockInner1,
  kBlockInner2,
  kFirstGraphSlot
};

class Arena {
 public:
  // Per-layer buffer of n floats (64-byte aligned). nullptr while measuring.
  float* take(int64_t n);
  // Temporary slot `slot` shared by all layers, at least n floats.
  float* shared(int slot, int64_t n);

  // Ends a measuring pass and allocates; the next pass hands out pointers.
  void allocate(Ops& ops);
  void begin_pass();
  bool measuring() const { return base_ == nullptr; }
  int64_t floats() const { return total_; }
  void release(Ops& ops);

 private:
  float* base_ = nullptr;
  int64_t cursor_ = 0, total_ = 0;
  std::vector<int64_t> shared_size_, shared_offset_;
};

}  // namespace ddpm
