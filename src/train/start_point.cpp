#include "train/start_point.h"

#include <algorithm>
#include <vector>

#include "core/common.h"
#include "core/config.h"
#include "dist/world.h"
#include "train/model_buffers.h"
#include "train/train_log.h"

namespace ddpm {
namespace {

// The counters rank 0 broadcasts.
enum StartField { kResumed, kStep, kIteration, kDataEpoch, kDataPosition, kSkips, kSavedWorldSize, kNumStartFields };

}  // namespace

StartPoint read_start_point(const std::string& checkpoint_dir, const Config& config,
                            const std::string& config_source, const ParamLayout& layout, uint32_t dataset_checksum,
                            TrainLog* log) {
  auto say = [&](const std::string& text) {
    if (log) log->line(text);
  };
  const int64_t P = layout.size();
  StartPoint start;
  for (HostFloats* b : {&start.params, &start.ema, &start.m, &start.v}) *b = alloc_host_floats(P);
  const TrainBuffers host{start.params.get(), start.ema.get(), start.m.get(), start.v.get()};
  if (const int removed = remove_unfinished_checkpoints(checkpoint_dir)) {
    say(cat("removed ", removed, " unfinished checkpoint file(s) of an interrupted write"));
  }
  const std::vector<std::string> paths = list_checkpoints(checkpoint_dir);
  // A damaged checkpoint is passed over with a warning.
  auto readable = [&](const std::string& path, const TrainBuffers& into, TrainState* s) {
    try {
      *s = read_checkpoint(path, layout, into);
      return true;
    } catch (const InputError& e) {
      say(cat("warning: skipping checkpoint: ", e.what()));
      return false;
    }
  };
  for (const std::string& path : paths) {
    // The config first (attributes only): a checkpoint of another model is refused, not
    // mistaken for a damaged one and skipped; then every tensor against its checksum.
    TrainState s;
    if (!readable(path, TrainBuffers{}, &s)) continue;
    const Config saved = parse_config(s.config_yaml, path + " (config)");
    for (const char* section : {"model", "diffusion"}) {
      const std::string diff = config_difference(saved, config, section);
      if (!diff.empty()) {
        input_error(path, ": this run was trained with another ", section, " config (", diff, " in ",
                    config_source, "); use a new --run-dir");
      }
    }
    if (!readable(path, host, &s)) continue;
    if (s.dataset_checksum != static_cast<int64_t>(dataset_checksum)) {
      say(cat("warning: ", config.data.path, " differs from the dataset this run started on (checksum)"));
    }
    if (saved.train.batch_size != config.train.batch_size) {
      say(cat("warning: train.batch_size changed from ", saved.train.batch_size, " to ", config.train.batch_size,
              ": the run goes on, but with another stream of batches than it would have had"));
    }
    start.resumed = true;
    start.path = path;
    start.state = s;
    return start;
  }
  if (!paths.empty()) {
    input_error(checkpoint_dir, ": none of the ", paths.size(),
                " checkpoint(s) reads back intact (see the warnings in train.log); restore one, or move them "
                "away to start afresh");
  }
  init_params(layout, start.params.get(), config.train.seed);
  std::copy(start.params.get(), start.params.get() + P, start.ema.get());  // the EMA starts as the weights
  return start;
}

void distribute_start_point(const World& world, StartPoint& start, ModelBuffers& buffers) {
  TrainState& state = start.state;
  int64_t fields[kNumStartFields] = {start.resumed,      state.step,          state.iteration, state.data_epoch,
                                     state.data_position, state.nonfinite_skips, state.world_size};
  world.broadcast(fields, kNumStartFields);
  start.resumed = fields[kResumed] != 0;
  state.step = fields[kStep];
  state.iteration = fields[kIteration];
  state.data_epoch = fields[kDataEpoch];
  state.data_position = fields[kDataPosition];
  state.nonfinite_skips = fields[kSkips];
  start.saved_world_size = fields[kSavedWorldSize];

  const int64_t P = buffers.params.size();
  Ops& ops = *buffers.params.ops();
  if (!world.is_root()) start.params = alloc_host_floats(P);
  world.broadcast(start.params.get(), P);
  buffers.params.load(start.params.get());
  if (start.resumed) {  // fresh moments are zero, as allocated
    if (!world.is_root()) start.m = alloc_host_floats(P), start.v = alloc_host_floats(P);
    world.broadcast(start.m.get(), P);
    world.broadcast(start.v.get(), P);
    ops.upload(buffers.m.get(), start.m.get(), P);
    ops.upload(buffers.v.get(), start.v.get(), P);
  }
  if (world.is_root()) buffers.ema.load(start.ema.get());
  for (HostFloats* b : {&start.params, &start.ema, &start.m, &start.v}) b->reset();
}

}  // namespace ddpm
