#include "core/arena.h"

#include "core/common.h"

namespace ddpm {
namespace {
int64_t round_up(int64_t n) { return (n + 15) / 16 * 16; }
}  // namespace

float* Arena::take(int64_t n) {
  const int64_t at = cursor_;
  cursor_ += round_up(n);
  if (measuring()) {
    total_ = cursor_;
    return nullptr;
  }
  DDPM_CHECK(cursor_ <= total_, "arena plan changed between passes");
  return base_ + at;
}

float* Arena::shared(int slot, int64_t n) {
  if (static_cast<int>(shared_size_.size()) <= slot) shared_size_.resize(slot + 1, 0);
  if (measuring()) {
    shared_size_[slot] = std::max(shared_size_[slot], round_up(n));
    return nullptr;
  }
  DDPM_CHECK(n <= shared_size_[slot], "arena shared slot grew between passes");
  return base_ + shared_offset_[slot];
}

void Arena::allocate(Ops& ops) {
  DDPM_CHECK(measuring(), "arena allocated twice");
  shared_offset_.assign(shared_size_.size(), 0);
  int64_t total = total_;
  for (size_t s = 0; s < shared_size_.size(); ++s) {
    shared_offset_[s] = total;
    total += shared_size_[s];
  }
  total_ = total;
  base_ = ops.alloc(total_);
  cursor_ = 0;
}

void Arena::begin_pass() { cursor_ = 0; }

void Arena::release(Ops& ops) {
  if (base_) ops.release(base_);
  base_ = nullptr;
  cursor_ = total_ = 0;
  shared_size_.clear();
  shared_offset_.clear();
}

}  // namespace ddpm
