#include "dist/allreduce.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/common.h"
#include "dist/world.h"

namespace ddpm {
namespace {

constexpr int64_t kMaxCount = (int64_t{1} << 31) - 1;  // MPI counts are int

// What both strategies share: buckets are [end - (k+1) B, end - k B) clipped at 0,
// numbered from the end of the buffer, so bucket k can go as soon as backward has
// finished everything from its start; and a communicator of their own (duplicated
// collectively at construction), so bucket reductions never interleave with the main
// thread's collectives.
class BucketedAllReduce : public GradientAllReduce {
 public:
  BucketedAllReduce(const World& world, int64_t bucket_floats)
      : world_(world), bucket_(std::min(bucket_floats, kMaxCount)) {
    DDPM_CHECK(bucket_floats > 0);
    if (world.size() > 1) DDPM_CHECK_MPI(MPI_Comm_dup(world.comm(), &comm_));
  }
  ~BucketedAllReduce() override {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  void begin(float* grads, int64_t n) override {
    grads_ = grads;
    n_ = n;
    num_buckets_ = (n + bucket_ - 1) / bucket_;
    queued_ = 0;
    on_begin();
  }

  void ready(int64_t first_final_offset) override {
    if (world_.size() == 1) return;
    int64_t k = queued_;
    while (k < num_buckets_ && bucket_start(k) >= first_final_offset) ++k;
    if (k > queued_) start_buckets(queued_, k);
    queued_ = k;
    progress();
  }

  void finish() override {
    wait_s_ = 0;
    if (world_.size() == 1) return;
    const double t0 = now_seconds();
    if (num_buckets_ > queued_) start_buckets(queued_, num_buckets_);
    queued_ = num_buckets_;
    complete();
    wait_s_ = now_seconds() - t0;
  }

  double last_wait_seconds() const override { return wait_s_; }

 protected:
  int64_t bucket_start(int64_t k) const { return std::max<int64_t>(0, n_ - (k + 1) * bucket_); }
  int64_t bucket_count(int64_t k) const { return n_ - k * bucket_ - bucket_start(k); }

  virtual void on_begin() = 0;
  // Buckets [from, to) are final: hand them to MPI.
  virtual void start_buckets(int64_t from, int64_t to) = 0;
  // Lets MPI move the reductions in flight forward without waiting.
  virtual void progress() {}
  // Waits until every bucket is summed.
  virtual void complete() = 0;

  const World& world_;
  const int64_t bucket_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  float* grads_ = nullptr;
  int64_t n_ = 0, num_buckets_ = 0, queued_ = 0;
  double wait_s_ = 0;
};

// A communication thread calls the blocking MPI_Allreduce per bucket, in order; while
// it waits inside MPI, MPI progresses, so a bucket moves while backward computes.
class ThreadAllReduce final : public BucketedAllReduce {
 public:
  ThreadAllReduce(const World& world, int64_t bucket_floats) : BucketedAllReduce(world, bucket_floats) {
    if (world.size() > 1) {
      DDPM_CHECK(world.thread_multiple(), "the communication thread needs MPI_THREAD_MULTIPLE");
      thread_ = std::thread([this] { comm_loop(); });
    }
  }

  ~ThreadAllReduce() override {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  double last_comm_seconds() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return comm_s_;
  }

 private:
  void on_begin() override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = 0;
    comm_s_ = 0;
  }

  void start_buckets(int64_t from, int64_t to) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t b = from; b < to; ++b) pending_.push_back(b);
    }
    cv_.notify_one();
  }

  void complete() override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [&] { return done_ == num_buckets_ || error_; });
    if (error_) std::rethrow_exception(error_);
  }

  void comm_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return shutdown_ || !pending_.empty(); });
      if (shutdown_) break;
      const int64_t k = pending_.front();
      pending_.pop_front();
      lock.unlock();
      const double t0 = now_seconds();
      try {
        DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, grads_ + bucket_start(k), static_cast<int>(bucket_count(k)),
                                     MPI_FLOAT, MPI_SUM, comm_));
      } catch (...) {
        lock.lock();
        error_ = std::current_exception();
        cv_done_.notify_all();
        continue;
      }
      const double dt = now_seconds() - t0;
      lock.lock();
      comm_s_ += dt;
      ++done_;
      cv_done_.notify_all();
    }
  }

  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_, cv_done_;
  std::deque<int64_t> pending_;
  int64_t done_ = 0;
  bool shutdown_ = false;
  std::exception_ptr error_;
  double comm_s_ = 0;
};

// MPI_Iallreduce per bucket from the calling thread; the reductions advance whenever the
// next ready() tests them (UNet::backward calls it after every block), so no thread of
// our own is needed and any MPI thread level works.
class NonBlockingAllReduce final : public BucketedAllReduce {
 public:
  using BucketedAllReduce::BucketedAllReduce;

  double last_comm_seconds() const override { return comm_s_; }

 private:
  void on_begin() override {
    requests_.clear();
    comm_s_ = 0;
  }

  void start_buckets(int64_t from, int64_t to) override {
    if (requests_.empty()) first_start_ = now_seconds();
    for (int64_t k = from; k < to; ++k) {
      requests_.push_back(MPI_REQUEST_NULL);
      DDPM_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, grads_ + bucket_start(k), static_cast<int>(bucket_count(k)),
                                    MPI_FLOAT, MPI_SUM, comm_, &requests_.back()));
    }
  }

  void progress() override {
    if (requests_.empty()) return;
    int all_done = 0;
    DDPM_CHECK_MPI(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &all_done,
                               MPI_STATUSES_IGNORE));
  }

  void complete() override {
    DDPM_CHECK_MPI(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    // From the first bucket's start to the last one's end, hidden or not.
    comm_s_ = requests_.empty() ? 0 : now_seconds() - first_start_;
  }

  std::vector<MPI_Request> requests_;
  double first_start_ = 0, comm_s_ = 0;
};

}  // namespace

std::unique_ptr<GradientAllReduce> make_mpi_allreduce(const World& world, int64_t bucket_floats,
                                                      AllReduceMode mode) {
  if (mode == AllReduceMode::kAuto) {
    mode = world.thread_multiple() ? AllReduceMode::kThread : AllReduceMode::kNonBlocking;
  }
  if (mode == AllReduceMode::kThread) return std::make_unique<ThreadAllReduce>(world, bucket_floats);
  return std::make_unique<NonBlockingAllReduce>(world, bucket_floats);
}

}  // namespace ddpm
