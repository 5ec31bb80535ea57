// What the units of a training run (the step, the periodic work) borrow from the
// Trainer, which owns all of it for the whole run.
#pragma once

namespace ddpm {

class Diffusion;
class Ops;
class UNet;
class Watchdog;
class World;
struct Config;
struct ModelBuffers;

struct RunContext {
  World& world;
  const Config& config;
  Ops& ops;
  UNet& net;
  const Diffusion& diffusion;
  Watchdog& watchdog;
  ModelBuffers& buffers;
  int local_batch;  // this rank's share of the global batch
};

}  // namespace ddpm
