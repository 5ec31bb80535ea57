// Every case of the op registry (tests/unit/op_registry.h) on the CUDA backend (fp32)
// against the CPU backend from the same inputs: every forward output and, for the
// differentiable cases, every input gradient, within the case's bound (0: bit for bit).
#define BOOST_TEST_MODULE gpu_op_registry
#include "gpu_test.h"
#include "op_registry.h"

using namespace ddpm;
using namespace ddpm::gputest;

BOOST_AUTO_TEST_CASE(every_registry_case_matches_the_cpu) {
  for (const test::OpCase& c : test::op_cases()) {
    BOOST_TEST_CONTEXT(c.label()) {
      const auto on_cpu = test::run_case(cpu(), c);
      const auto on_gpu = test::run_case(gpu(), c);
      std::vector<std::string> compared = c.outputs;
      for (const std::string& d : c.backward_outputs()) compared.push_back(d);
      for (const std::string& name : compared) {
        BOOST_TEST_INFO(name);
        BOOST_TEST(test::result_error(on_gpu->result(name), on_cpu->result(name)) <= c.cuda_bound);
      }
    }
  }
}

DDPM_GPU_TEST_MAIN()
