// NCCL implementation of GradientAllReduce (nccl_allreduce.h).
//
// Streams: backward runs on the CudaOps compute stream; every bucket's ncclAllReduce
// runs on a communication stream of its own (high priority), after an event recorded
// on the compute stream when ready() declares the bucket final. finish() sends what is
// left and makes the compute stream wait for the last reduction, so the optimizer that
// follows sees the sums without the host ever blocking.
#include "dist/nccl_allreduce.h"

#include <nccl.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/common.h"
#include "core/cuda/cuda_ops.h"
#include "dist/world.h"

#define DDPM_CHECK_NCCL(call) check_nccl((call), #call, __FILE__, __LINE__)

namespace ddpm {
namespace {

void check_nccl(ncclResult_t rc, const char* call, const char* file, int line) {
  if (rc == ncclSuccess) return;
  throw Error(cat(file, ":", line, ": ", call, " failed: ", ncclGetErrorString(rc),
                  " (set NCCL_DEBUG=WARN for NCCL's own account)"));
}

class NcclAllReduce final : public GradientAllReduce {
 public:
  NcclAllReduce(const World& world, CudaOps& ops, int64_t bucket_floats, bool communicate_alone)
      : ops_(ops), bucket_floats_(bucket_floats), active_(world.size() > 1 || communicate_alone) {
    DDPM_CHECK(bucket_floats > 0, "bucket size ", bucket_floats);
    if (!active_) return;
    DDPM_CHECK_CUDA(cudaSetDevice(ops.device()));
    ncclUniqueId id{};
    if (world.is_root()) DDPM_CHECK_NCCL(ncclGetUniqueId(&id));
    DDPM_CHECK_MPI(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, world.comm()));
    DDPM_CHECK_NCCL(ncclCommInitRank(&comm_, world.size(), id, world.rank()));
    int least = 0, greatest = 0;
    DDPM_CHECK_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    DDPM_CHECK_CUDA(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, greatest));
    for (cudaEvent_t* e : {&grads_ready_, &comm_done_}) {
      DDPM_CHECK_CUDA(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
    DDPM_CHECK_CUDA(cudaEventCreate(&backward_done_timed_));
    DDPM_CHECK_CUDA(cudaEventCreate(&comm_done_timed_));
  }

  ~NcclAllReduce() override {
    if (!active_) return;
    cudaStreamSynchronize(comm_stream_);
    for (cudaEvent_t e : {grads_ready_, comm_done_, backward_done_timed_, comm_done_timed_}) {
      cudaEventDestroy(e);
    }
    for (auto& [start, end] : bucket_events_) {
      cudaEventDestroy(start);
      cudaEventDestroy(end);
    }
    cudaStreamDestroy(comm_stream_);
    ncclCommDestroy(comm_);
  }

  void begin(float* grads, int64_t n) override {
    grads_ = grads;
    n_ = n;
    unsent_end_ = n;
    buckets_sent_ = 0;
    timings_read_ = false;
  }

  void ready(int64_t first_final_offset) override {
    if (!active_) return;
    // Send every whole bucket at or above the offset, from the end of the buffer down.
    while (unsent_end_ > 0 && bucket_start(unsent_end_) >= first_final_offset) send_next_bucket();
  }

  void finish() override {
    if (!active_) return;
    while (unsent_end_ > 0) send_next_bucket();
    DDPM_CHECK_CUDA(cudaEventRecord(backward_done_timed_, ops_.stream()));
    DDPM_CHECK_CUDA(cudaEventRecord(comm_done_, comm_stream_));
    DDPM_CHECK_CUDA(cudaEventRecord(comm_done_timed_, comm_stream_));
    DDPM_CHECK_CUDA(cudaStreamWaitEvent(ops_.stream(), comm_done_, 0));
  }

  double last_wait_seconds() const override {
    read_timings();
    return wait_seconds_;
  }

  double last_comm_seconds() const override {
    read_timings();
    return comm_seconds_;
  }

 private:
  int64_t bucket_start(int64_t end) const { return std::max<int64_t>(0, end - bucket_floats_); }

  void send_next_bucket() {
    const int64_t lo = bucket_start(unsent_end_), count = unsent_end_ - lo;
    if (bucket_events_.size() <= buckets_sent_) {
      std::pair<cudaEvent_t, cudaEvent_t> pair;
      DDPM_CHECK_CUDA(cudaEventCreate(&pair.first));
      DDPM_CHECK_CUDA(cudaEventCreate(&pair.second));
      bucket_events_.push_back(pair);
    }
    auto& [start, end] = bucket_events_[buckets_sent_];
    DDPM_CHECK_CUDA(cudaEventRecord(grads_ready_, ops_.stream()));
    DDPM_CHECK_CUDA(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
    DDPM_CHECK_CUDA(cudaEventRecord(start, comm_stream_));
    DDPM_CHECK_NCCL(ncclAllReduce(grads_ + lo, grads_ + lo, static_cast<size_t>(count), ncclFloat, ncclSum, comm_,
                                  comm_stream_));
    DDPM_CHECK_CUDA(cudaEventRecord(end, comm_stream_));
    ++buckets_sent_;
    unsent_end_ = lo;
  }

  // The step's figures from its events (waits for the step's communication to end).
  void read_timings() const {
    if (!active_ || timings_read_ || buckets_sent_ == 0) return;
    DDPM_CHECK_CUDA(cudaEventSynchronize(comm_done_timed_));
    double total = 0.0;
    for (size_t b = 0; b < buckets_sent_; ++b) {
      float ms = 0.0f;
      DDPM_CHECK_CUDA(cudaEventElapsedTime(&ms, bucket_events_[b].first, bucket_events_[b].second));
      total += ms * 1e-3;
    }
    float wait_ms = 0.0f;  // negative when communication ended before backward did
    DDPM_CHECK_CUDA(cudaEventElapsedTime(&wait_ms, backward_done_timed_, comm_done_timed_));
    comm_seconds_ = total;
    wait_seconds_ = std::max(0.0, wait_ms * 1e-3);
    timings_read_ = true;
  }

  CudaOps& ops_;
  int64_t bucket_floats_;
  bool active_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t grads_ready_ = nullptr, comm_done_ = nullptr;  // ordering only (no timing)
  cudaEvent_t backward_done_timed_ = nullptr, comm_done_timed_ = nullptr;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> bucket_events_;
  float* grads_ = nullptr;
  int64_t n_ = 0, unsent_end_ = 0;
  size_t buckets_sent_ = 0;
  mutable bool timings_read_ = false;
  mutable double comm_seconds_ = 0.0, wait_seconds_ = 0.0;
};

}  // namespace

std::unique_ptr<GradientAllReduce> make_nccl_allreduce(const World& world, Ops& cuda_ops, int64_t bucket_floats,
                                                       bool communicate_alone) {
  auto* ops = dynamic_cast<CudaOps*>(&cuda_ops);
  DDPM_CHECK(ops != nullptr, "the NCCL all-reduce needs the CUDA backend, not '", cuda_ops.name(), "'");
  return std::make_unique<NcclAllReduce>(world, *ops, bucket_floats, communicate_alone);
}

}  // namespace ddpm
