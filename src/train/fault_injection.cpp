#include "train/fault_injection.h"

#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

#include "core/buffer.h"
#include "core/common.h"
#include "core/ops.h"

namespace ddpm {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

// A non-negative decimal integer, or -1.
int64_t parse_count(const std::string& s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(s);
}

}  // namespace

FaultInjector FaultInjector::parse(const std::string& spec, const std::string& source) {
  FaultInjector injector;
  injector.spec_ = spec;
  const std::string usage = " (expected KIND:rank=R:iteration=I with KIND nan_grad, nan_loss, perturb_param, "
                            "die_in_allreduce or slow_checkpoint; see docs/operations.md)";
  for (const std::string& item : split(spec, ',')) {
    const std::vector<std::string> fields = split(item, ':');
    Fault f;
    if (fields[0] == "nan_grad") f.kind = FaultKind::kNanGrad;
    else if (fields[0] == "nan_loss") f.kind = FaultKind::kNanLoss;
    else if (fields[0] == "perturb_param") f.kind = FaultKind::kPerturbParam;
    else if (fields[0] == "die_in_allreduce") f.kind = FaultKind::kDieInAllreduce;
    else if (fields[0] == "slow_checkpoint") f.kind = FaultKind::kSlowCheckpoint;
    else input_error(source, ": unknown fault '", fields[0], "' in '", item, "'", usage);
    bool has_rank = false, has_iteration = false;
    for (size_t i = 1; i < fields.size(); ++i) {
      const size_t eq = fields[i].find('=');
      const std::string key = fields[i].substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : fields[i].substr(eq + 1);
      if (key == "rank" && !has_rank) {
        const int64_t r = parse_count(value);
        if (r < 0 || r > std::numeric_limits<int>::max()) {
          input_error(source, ": bad rank '", value, "' in '", item, "'", usage);
        }
        f.rank = static_cast<int>(r);
        has_rank = true;
      } else if (key == "iteration" && !has_iteration) {
        const size_t dash = value.find('-');
        f.first_iteration = parse_count(value.substr(0, dash));
        if (dash == std::string::npos) f.last_iteration = f.first_iteration;
        else if (dash + 1 == value.size()) f.last_iteration = std::numeric_limits<int64_t>::max();
        else f.last_iteration = parse_count(value.substr(dash + 1));
        if (f.first_iteration < 0 || f.last_iteration < f.first_iteration) {
          input_error(source, ": bad iteration '", value, "' in '", item, "'", usage);
        }
        has_iteration = true;
      } else {
        input_error(source, ": unexpected or repeated field '", fields[i], "' in '", item, "'", usage);
      }
    }
    if (!has_rank || !has_iteration) input_error(source, ": '", item, "' needs both rank= and iteration=", usage);
    injector.faults_.push_back(f);
  }
  return injector;
}

FaultInjector FaultInjector::from_environment() {
  const char* value = std::getenv(kVariable);
  if (!value || !*value) return FaultInjector();
  return parse(value, kVariable);
}

bool FaultInjector::fires(FaultKind kind, int rank, int64_t iteration) const {
  for (const Fault& f : faults_) {
    if (f.kind == kind && f.rank == rank && iteration >= f.first_iteration && iteration <= f.last_iteration) {
      return true;
    }
  }
  return false;
}

namespace {

class FaultHook : public StepHook {
 public:
  FaultHook(const FaultInjector& faults, int rank) : faults_(faults), rank_(rank) {}

  void on_losses(int64_t iteration, double* losses, int) override {
    if (faults_.fires(FaultKind::kNanLoss, rank_, iteration)) losses[0] = NAN;
  }
  void on_zeroed_gradients(int64_t iteration, Ops& ops, Buffer& grads) override {
    if (!faults_.fires(FaultKind::kNanGrad, rank_, iteration)) return;
    const float nan = NAN;
    ops.upload(grads.get(), &nan, 1);  // offset 0 is the last bucket to go: it must reach the others
  }
  void on_gradients_ready(int64_t iteration, int64_t from, int64_t total) override {
    // Buckets go from the end of the buffer to its start: past the middle, some are in
    // flight and the rest are not yet sent.
    if (from <= total / 2 && faults_.fires(FaultKind::kDieInAllreduce, rank_, iteration)) {
      std::fprintf(stderr, "ddpm_train: rank %d: injected fault die_in_allreduce at iteration %lld\n", rank_,
                   static_cast<long long>(iteration));
      std::fflush(stderr);
      raise(SIGKILL);
    }
  }
  void on_parameters(int64_t iteration, Ops& ops, ParamBuffer& params) override {
    if (!faults_.fires(FaultKind::kPerturbParam, rank_, iteration)) return;
    float first_param = 0;
    ops.download(&first_param, params.get(), 1);
    first_param += 1e-3f;
    ops.upload(params.get(), &first_param, 1);
    params.changed();
  }

 private:
  const FaultInjector faults_;
  const int rank_;
};

}  // namespace

std::unique_ptr<StepHook> make_fault_hook(const FaultInjector& faults, int rank) {
  if (faults.empty()) return nullptr;
  return std::make_unique<FaultHook>(faults, rank);
}

std::function<void(int64_t)> make_checkpoint_delay(const FaultInjector& faults, int rank) {
  bool any = false;
  for (const Fault& f : faults.faults()) any |= f.kind == FaultKind::kSlowCheckpoint && f.rank == rank;
  if (!any) return {};
  return [faults, rank](int64_t iteration) {
    if (faults.fires(FaultKind::kSlowCheckpoint, rank, iteration)) std::this_thread::sleep_for(std::chrono::seconds(3));
  };
}

}  // namespace ddpm
