#include "train/checkpoint_writer.h"

#include <chrono>

#include "core/clock.h"
#include "core/common.h"
#include "core/h5.h"
#include "core/ops.h"

namespace ddpm {
CheckpointWriter::CheckpointWriter(std::string checkpoint_dir, ModelConfig model, const ParamLayout& layout, int keep,
                                   std::function<void(int64_t)> before_commit)
    : dir_(std::move(checkpoint_dir)),
      model_(std::move(model)),
      layout_(layout),
      keep_(keep),
      before_commit_(std::move(before_commit)) {
  const int64_t P = layout.size();
  params_ = alloc_host_floats(P);
  ema_ = alloc_host_floats(P);
  m_ = alloc_host_floats(P);
  v_ = alloc_host_floats(P);
  thread_ = std::thread([this] { run(); });
}

CheckpointWriter::~CheckpointWriter() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !pending_; });
    shutdown_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

double CheckpointWriter::start(Ops& ops, const TrainBuffers& buffers, const TrainState& state) {
  DDPM_CHECK(buffers.params && buffers.ema && buffers.m && buffers.v);
  const double t0 = now_seconds();
  wait();
  // The thread is idle until pending_ is set: the snapshot is ours to fill.
  const int64_t P = layout_.size();
  ops.download(params_.get(), buffers.params, P);
  ops.download(ema_.get(), buffers.ema, P);
  ops.download(m_.get(), buffers.m, P);
  ops.download(v_.get(), buffers.v, P);
  state_ = state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = true;
  }
  cv_.notify_all();
  return now_seconds() - t0;
}

void CheckpointWriter::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pending_; });
}

std::vector<CheckpointWriter::Outcome> CheckpointWriter::take_finished() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Outcome> out;
  out.swap(finished_);
  return out;
}

int64_t CheckpointWriter::last_committed_step() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_committed_;
}

void CheckpointWriter::run() {
  h5::init();
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return shutdown_ || pending_; });
    if (shutdown_) return;
    lock.unlock();
    Outcome o;
    o.step = state_.step;
    const double t0 = now_seconds();
    try {
      o.path = write_checkpoint(dir_, model_, layout_, TrainBuffers{params_.get(), ema_.get(), m_.get(), v_.get()},
                                state_, keep_, [this] {
                                  if (before_commit_) before_commit_(state_.iteration);
                                });
      o.ok = true;
    } catch (const std::exception& e) {
      // write_checkpoint removed its temporary file; the previous checkpoint stands.
      o.error = e.what();
    }
    o.seconds = now_seconds() - t0;
    lock.lock();
    if (o.ok) last_committed_ = o.step;
    finished_.push_back(std::move(o));
    pending_ = false;
    cv_.notify_all();
  }
}

}  // namespace ddpm
