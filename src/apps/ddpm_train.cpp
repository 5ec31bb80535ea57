// ddpm_train: trains a DDPM from a YAML config, on one process or under mpirun.
//   mpirun -np 8 ddpm_train --config configs/cifar10.yaml --run-dir runs/cifar10
#include <csignal>
#include <cstdio>

#include <hdf5.h>

#include "apps/cli.h"
#include "core/common.h"
#include "core/config.h"
#include "dist/signals.h"
#include "dist/world.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  // No HDF5 clean-up at exit: after a checkpoint write failed (disk full) HDF5 1.10 keeps
  // a half-closed file object that its exit handler then crashes on. Everything that
  // matters is closed explicitly before; must come before any other HDF5 call.
  H5dont_atexit();
  // Before MPI starts its threads: they inherit the blocked stop signals (signals.cpp).
  ddpm::install_stop_handlers();
  ddpm::World world(&argc, &argv);
  // Past a file-size limit (ulimit -f) a write fails with EFBIG and is reported like a full
  // disk (the previous checkpoint stays), instead of SIGXFSZ killing the rank.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    ddpm::Cli cli("ddpm_train", "--config FILE --run-dir DIR [--set section.key=value ...]",
                  "Trains the model of FILE on its dataset (data.path). Starting in a run directory that holds a "
                  "checkpoint resumes from the newest valid one. Under mpirun each rank takes train.batch_size / "
                  "ranks images of every global batch.\n\nExit status: 0 done, 2 bad input, 75 stopped by "
                  "SIGUSR1/SIGTERM after a checkpoint (requeue), 1 other failures (docs/operations.md).");
    cli.option("config", "FILE", "YAML config (docs/config.md)");
    cli.option("run-dir", "DIR", "run directory: config.yaml, checkpoints/, samples/, metrics.jsonl, train.log");
    cli.repeated("set", "SECTION.KEY=VALUE", "override a config key");
    cli.flag("no-progress", "no live progress line, even on a terminal");
    if (!cli.parse_on_ranks(argc, argv, world.is_root())) return 0;
    if (!cli.positional().empty()) ddpm::input_error("unexpected argument '", cli.positional().front(), "'");
    const std::string config_path = cli.require("config");
    const ddpm::Config config = ddpm::load_config(config_path, cli.all("set"));
    ddpm::TrainOptions options;
    options.run_dir = cli.require("run-dir");
    options.config_source = config_path;
    options.progress_bar = !cli.has("no-progress");
    ddpm::Trainer trainer(world, config, options);
    return trainer.run();
  } catch (const ddpm::InputError& e) {
    // Every rank saw the same input (or agreed on the first rank's error): one line.
    if (world.is_root()) std::fprintf(stderr, "ddpm_train: error: %s\n", e.what());
    return ddpm::kExitBadInput;
  } catch (const std::exception& e) {
    world.abort(ddpm::kExitInternal, ddpm::cat("ddpm_train: internal error on rank ", world.rank(), ": ", e.what()));
  }
}
