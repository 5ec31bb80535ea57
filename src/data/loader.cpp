#include "data/loader.h"

#include <array>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core/common.h"
#include "data/image.h"
#include "data/shard_reader.h"
#include "data/stream.h"

namespace ddpm::data {
namespace {

// The two most recent epochs' permutations: a global batch spans at most two epochs
// when B <= D (more are recomputed as needed when B > D).
class PermutationCache {
 public:
  PermutationCache(uint64_t seed, int64_t count) : seed_(seed), count_(count) {}
  uint32_t at(int64_t epoch, int64_t position) {
    for (Entry& e : entries_) {
      if (e.epoch == epoch) return e.perm[static_cast<size_t>(position)];
    }
    Entry& victim = entries_[0].epoch < entries_[1].epoch ? entries_[0] : entries_[1];
    victim.epoch = epoch;
    epoch_permutation(seed_, epoch, count_, &victim.perm);  // reuses the vector's storage
    return victim.perm[static_cast<size_t>(position)];
  }

 private:
  struct Entry {
    int64_t epoch = -1;
    std::vector<uint32_t> perm;
  };
  uint64_t seed_;
  int64_t count_;
  std::array<Entry, 2> entries_;
};

struct Slot {
  Batch batch;
  std::exception_ptr error;
};

// Hands a batch over without copying or allocating: `to` takes from's pixel storage and
// `from` gets to's old storage back, to be filled again.
void hand_over(Batch& from, Batch& to) {
  to.n = from.n;
  to.first_global_example = from.first_global_example;
  to.next = from.next;
  to.pixels.swap(from.pixels);
}

constexpr int64_t kMaxBatchBytes = int64_t{8} << 30;

}  // namespace

LoaderOptions loader_options(const Config& config, int rank, int world_size, Cursor start) {
  LoaderOptions o;
  o.path = config.data.path;
  o.global_batch = config.train.batch_size;
  o.rank = rank;
  o.world_size = world_size;
  o.seed = config.train.seed;
  o.random_flip = config.data.random_flip;
  o.prefetch_batches = config.data.prefetch_batches;
  o.start = start;
  return o;
}

struct Loader::Impl {
  LoaderOptions opt;
  DatasetReader reader;
  DatasetInfo info;
  int per_rank = 0;
  PermutationCache perms;
  int64_t produce_at = 0;  // stream position of the next global batch to produce
  int64_t consume_at = 0;  // ... and of the next one next() returns

  std::mutex mutex;
  std::condition_variable not_empty, not_full;
  // The prefetched batches: a ring of opt.prefetch_batches slots whose pixel buffers
  // circulate between the producer, the ring and the caller (no allocation once full).
  std::vector<Slot> ring;
  size_t ring_head = 0, ring_size = 0;
  Batch producing;  // the producer's batch in the making
  bool stop = false;
  std::exception_ptr failure;  // sticky: once next() has thrown, it throws again
  std::thread producer;

  explicit Impl(const LoaderOptions& o)
      : opt(o), reader(o.path, o.max_open_shards), perms(o.seed, reader.count()) {}

  Cursor cursor_at(int64_t s) const { return {s / info.count, s % info.count}; }

  void make_batch(int64_t batch_begin, Batch& b) {
    const StreamRange range = rank_range(batch_begin, opt.global_batch, opt.rank, opt.world_size);
    const int64_t bytes = info.image_bytes();
    b.n = per_rank;
    b.first_global_example = range.begin - batch_begin;
    b.next = cursor_at(batch_begin + opt.global_batch);
    b.pixels.resize(static_cast<size_t>(per_rank * bytes));
    for (int64_t k = 0; k < per_rank; ++k) {
      const int64_t s = range.begin + k;
      const int64_t epoch = s / info.count, position = s % info.count;
      const int64_t image = perms.at(epoch, position);
      uint8_t* px = b.pixels.data() + k * bytes;
      reader.read(image, px);
      const bool flip = opt.random_flip && flip_at(opt.seed, epoch, position);
      if (flip) flip_horizontal(px, info.height, info.width, info.channels);
    }
  }

  // Queues `producing` (or the error) once a slot is free; false once the loader stops.
  bool enqueue(std::exception_ptr error) {
    std::unique_lock<std::mutex> lock(mutex);
    not_full.wait(lock, [&] { return stop || ring_size < ring.size(); });
    if (stop) return false;
    Slot& slot = ring[(ring_head + ring_size) % ring.size()];
    hand_over(producing, slot.batch);
    slot.error = std::move(error);
    ++ring_size;
    not_empty.notify_one();
    return true;
  }

  void produce() {
    for (;;) {
      std::exception_ptr error;
      try {
        make_batch(produce_at, producing);
      } catch (...) {
        error = std::current_exception();
      }
      const bool failed = error != nullptr;
      if (!enqueue(std::move(error)) || failed) return;  // after an error the consumer rethrows it
      produce_at += opt.global_batch;
    }
  }

  void produce_guarded() {
    try {
      produce();
    } catch (...) {  // e.g. bad_alloc growing a buffer: hand it to the consumer
      enqueue(std::current_exception());
    }
  }
};

Loader::Loader(const LoaderOptions& o) {
  // Options first, so that a bad one fails before the dataset is opened.
  rank_range(0, o.global_batch, o.rank, o.world_size);
  if (o.prefetch_batches < 0 || o.prefetch_batches > 1024) input_error("prefetch_batches must be in 0..1024");
  impl_ = std::make_unique<Impl>(o);
  Impl& im = *impl_;
  const Manifest& m = im.reader.manifest();
  im.info = DatasetInfo{o.path, m.source, m.count, m.shape.height, m.shape.width, m.shape.channels,
                        static_cast<int64_t>(m.shards.size()), m.has_labels, m.fingerprint()};
  im.per_rank = o.global_batch / o.world_size;
  if (im.per_rank * im.info.image_bytes() > kMaxBatchBytes) {
    input_error(o.path, ": a batch of ", im.per_rank, " images of ", shape_string(m.shape), " is over the limit of ",
                kMaxBatchBytes, " bytes");
  }
  const Cursor& c = o.start;
  const int64_t max_epoch = std::min<int64_t>(UINT32_MAX, (INT64_MAX - 2 * m.count) / m.count - 1);
  if (c.epoch < 0 || c.epoch > max_epoch || c.position < 0 || c.position >= m.count) {
    input_error(o.path, ": cursor (epoch ", c.epoch, ", position ", c.position, ") is outside this dataset of ",
                m.count, " images (was the checkpoint made with another dataset?)");
  }
  im.produce_at = im.consume_at = c.epoch * m.count + c.position;
  im.ring.resize(static_cast<size_t>(o.prefetch_batches));
  if (o.prefetch_batches > 0) im.producer = std::thread([&im] { im.produce_guarded(); });
}

Loader::~Loader() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->not_full.notify_all();
  if (impl_->producer.joinable()) impl_->producer.join();
}

void Loader::next(Batch& batch) {
  Impl& im = *impl_;
  if (im.failure) std::rethrow_exception(im.failure);
  std::exception_ptr error;
  if (im.opt.prefetch_batches == 0) {
    try {
      im.make_batch(im.consume_at, batch);
    } catch (...) {
      error = std::current_exception();
    }
  } else {
    std::unique_lock<std::mutex> lock(im.mutex);
    im.not_empty.wait(lock, [&] { return im.ring_size > 0; });
    Slot& slot = im.ring[im.ring_head];
    error = std::move(slot.error);
    if (!error) hand_over(slot.batch, batch);
    im.ring_head = (im.ring_head + 1) % im.ring.size();
    --im.ring_size;
    im.not_full.notify_one();
  }
  if (error) {
    im.failure = error;
    std::rethrow_exception(error);
  }
  im.consume_at += im.opt.global_batch;
}

Batch Loader::next() {
  Batch batch;
  next(batch);
  return batch;
}

const DatasetInfo& Loader::info() const { return impl_->info; }

}  // namespace ddpm::data
