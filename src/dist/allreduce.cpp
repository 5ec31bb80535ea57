#include "dist/allreduce.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/common.h"
#include "dist/world.h"

namespace ddpm {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Buckets are [end - (k+1) B, end - k B) clipped at 0, numbered from the end of the
// buffer: bucket k can go as soon as backward has finished everything from its start.
class MpiAllReduce final : public GradientAllReduce {
 public:
  MpiAllReduce(const World& world, int64_t bucket_floats) : world_(world), bucket_(bucket_floats) {
    if (world.size() > 1 && world.thread_multiple()) {
      // A communicator of its own (duplicated here, by the main thread, collectively),
      // so the bucket reductions never interleave with the main thread's collectives.
      DDPM_CHECK_MPI(MPI_Comm_dup(world.comm(), &comm_));
      thread_ = std::thread([this] { comm_loop(); });
    }
  }

  ~MpiAllReduce() override {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        shutdown_ = true;
      }
      cv_.notify_all();
      thread_.join();
      MPI_Comm_free(&comm_);
    }
  }

  void begin(float* grads, int64_t n) override {
    grads_ = grads;
    n_ = n;
    num_buckets_ = (n + bucket_ - 1) / bucket_;
    queued_ = 0;
    std::lock_guard<std::mutex> lock(mu_);
    done_ = 0;
    comm_s_ = 0;
  }

  void ready(int64_t first_final_offset) override {
    if (world_.size() == 1) return;
    // Queue every bucket whose whole range is now final.
    int64_t k = queued_;
    while (k < num_buckets_ && bucket_start(k) >= first_final_offset) ++k;
    enqueue_up_to(k);
  }

  void finish() override {
    wait_s_ = 0;
    if (world_.size() == 1) return;
    const double t0 = now_s();
    enqueue_up_to(num_buckets_);
    if (!thread_.joinable()) {
      // No MPI_THREAD_MULTIPLE: reduce everything here, after backward (no overlap).
      while (!pending_.empty()) {
        reduce(pending_.front());
        pending_.pop_front();
      }
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_done_.wait(lock, [&] { return done_ == num_buckets_ || error_; });
      if (error_) std::rethrow_exception(error_);
    }
    wait_s_ = now_s() - t0;
  }

  double last_wait_seconds() const override { return wait_s_; }
  double last_comm_seconds() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return comm_s_;
  }

 private:
  int64_t bucket_start(int64_t k) const { return std::max<int64_t>(0, n_ - (k + 1) * bucket_); }
  int64_t bucket_end(int64_t k) const { return n_ - k * bucket_; }

  void enqueue_up_to(int64_t k) {
    if (k <= queued_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t b = queued_; b < k; ++b) pending_.push_back(b);
    }
    queued_ = k;
    cv_.notify_one();
  }

  void reduce(int64_t k) {
    const double t0 = now_s();
    const int64_t start = bucket_start(k), count = bucket_end(k) - start;
    DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, grads_ + start, static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                                 comm_));
    const double dt = now_s() - t0;
    std::lock_guard<std::mutex> lock(mu_);
    comm_s_ += dt;
  }

  void comm_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return shutdown_ || !pending_.empty(); });
      if (shutdown_) break;
      const int64_t k = pending_.front();
      pending_.pop_front();
      lock.unlock();
      try {
        reduce(k);
      } catch (...) {
        lock.lock();
        error_ = std::current_exception();
        cv_done_.notify_all();
        continue;
      }
      lock.lock();
      ++done_;
      cv_done_.notify_all();
    }
  }

  const World& world_;
  const int64_t bucket_;
  float* grads_ = nullptr;
  int64_t n_ = 0, num_buckets_ = 0, queued_ = 0;
  MPI_Comm comm_ = MPI_COMM_WORLD;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_, cv_done_;
  std::deque<int64_t> pending_;
  int64_t done_ = 0;
  bool shutdown_ = false;
  std::exception_ptr error_;
  double wait_s_ = 0, comm_s_ = 0;
};

}  // namespace

std::unique_ptr<GradientAllReduce> make_mpi_allreduce(const World& world, int64_t bucket_floats) {
  return std::make_unique<MpiAllReduce>(world, bucket_floats);
}

}  // namespace ddpm
