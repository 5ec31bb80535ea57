#include "one_rank_training.h"

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>

#include "core/backend.h"
#include "core/params.h"
#include "train/run_context.h"

namespace ddpm::testing {

World& test_world() {
  auto& suite = boost::unit_test::framework::master_test_suite();
  static World world(&suite.argc, &suite.argv);
  return world;
}

OneRankTraining::OneRankTraining(const Config& cfg, int threads)
    : config(cfg),
      ops(make_backend(cfg.device, 0, threads)),
      net(cfg.model),
      diffusion(cfg.diffusion),
      optimizer(cfg.train),
      watchdog(0, cfg.train.step_timeout_s,
               [](const std::string& message) {
                 std::fprintf(stderr, "%s\n", message.c_str());
                 std::abort();
               }),
      buffers(*ops, net.layout().size(), /*with_ema=*/true),
      loader(data::loader_options(cfg, 0, 1)) {
  HostFloats initial = alloc_host_floats(net.layout().size());
  init_params(net.layout(), initial.get(), cfg.train.seed);
  load_weights(initial.get());
  const int batch = cfg.train.batch_size;
  net.prepare(*ops, batch);
  const RunContext run{test_world(), config, *ops, net, diffusion, watchdog, buffers, batch};
  step = std::make_unique<TrainStep>(run, optimizer, loader, nullptr);
}

void OneRankTraining::load_weights(const float* host) {
  buffers.params.load(host);
  buffers.ema.copy_from(buffers.params);
}

}  // namespace ddpm::testing
