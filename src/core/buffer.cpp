#include "core/buffer.h"

#include <atomic>
#include <utility>

#include "core/common.h"

namespace ddpm {

Buffer::Buffer(Ops& ops, int64_t n) : ops_(&ops), data_(ops.alloc(n)), size_(n) {}

Buffer::Buffer(Ops& ops, const std::vector<float>& host) : Buffer(ops, static_cast<int64_t>(host.size())) {
  ops.upload(data_, host.data(), size_);
}

std::vector<float> Buffer::host() const {
  std::vector<float> values(static_cast<size_t>(size_));
  if (size_ > 0) ops_->download(values.data(), data_, size_);
  return values;
}

void Buffer::reset() {
  if (data_) ops_->release(data_);
  ops_ = nullptr, data_ = nullptr, size_ = 0;
}

void Buffer::swap(Buffer& other) noexcept {
  std::swap(ops_, other.ops_);
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
}

uint64_t ParamBuffer::next_version() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

void ParamBuffer::load(const float* host) {
  ops()->upload(get(), host, size());
  changed();
}

void ParamBuffer::copy_from(const Buffer& source) {
  DDPM_CHECK(source.size() == size(), "copy between buffers of different sizes");
  ops()->copy(get(), source.get(), size());
  changed();
}

}  // namespace ddpm
