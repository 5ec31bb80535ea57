// One rank's training parts, built from a Config as ddpm_train builds them
// (train/trainer.cpp), for tests that drive the real TrainStep without a run directory:
// the training golden (test_golden_train) and the allocation count
// (tests/mpi/test_step_allocations).
#pragma once

#include <memory>

#include "core/config.h"
#include "core/diffusion.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/unet.h"
#include "data/loader.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "train/model_buffers.h"
#include "train/train_step.h"

namespace ddpm::testing {

// The test process's World, made on first use from the Boost.Test suite's arguments: a
// world of one (MPI singleton init) unless started by mpirun. MPI starts once a process.
World& test_world();

// Members in the order they are built; the backend goes last, after every buffer and
// primitive it owns. The weights start as init_params(train.seed) and the EMA as a copy.
struct OneRankTraining {
  OneRankTraining(const Config& config, int threads);

  // Replaces the weights and the EMA shadow (host memory, the layout's size).
  void load_weights(const float* host);

  const Config config;
  const std::unique_ptr<Ops> ops;
  UNet net;
  const Diffusion diffusion;
  Optimizer optimizer;
  Watchdog watchdog;
  ModelBuffers buffers;
  data::Loader loader;
  std::unique_ptr<TrainStep> step;
};

}  // namespace ddpm::testing
