// The model's training buffers on a rank's backend, all with the parameter layout
// (core/params.h): the weights, their summed gradient, Adam's moments and, on rank 0,
// the EMA. They belong to the Trainer; the step, the start point and the periodic work
// borrow them.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "io/checkpoint.h"

namespace ddpm {

struct ModelBuffers {
  ParamBuffer params;
  Buffer grads, m, v;
  ParamBuffer ema;  // rank 0 only; empty on the others

  ModelBuffers() = default;
  ModelBuffers(Ops& ops, int64_t size, bool with_ema)
      : params(ops, size), grads(ops, size), m(ops, size), v(ops, size) {
    if (with_ema) ema = ParamBuffer(ops, size);
  }
  ParamBuffer* ema_or_null() { return ema ? &ema : nullptr; }
  // The buffers a checkpoint holds.
  TrainBuffers checkpoint_view() const { return TrainBuffers{params.get(), ema.get(), m.get(), v.get()}; }
};

}  // namespace ddpm
