// What rank 0 tells the user during training: a live progress line on a terminal (step,
// loss, lr, grad norm, img/s, ETA), plain lines otherwise (also appended to train.log),
// and one JSON record per `log_every` steps in metrics.jsonl.
#pragma once

#include <cstdio>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace ddpm {

struct StepReport {
  int64_t step = 0, total_steps = 0, iteration = 0;
  double loss = 0;            // mean L over the interval
  double loss_quartile[4] = {0, 0, 0, 0};  // mean loss of examples with t in each quarter of [0, T)
  double lr = 0, grad_norm = 0;
  double images_per_s = 0;    // global
  double eta_s = 0;
  int64_t skipped = 0;        // non-finite steps skipped in the interval
  double comm_wait_s = 0;     // all-reduce time not hidden behind backward, per step
};

// A training FID (train/training_fid.h): a curve, not the paper's 50k-sample ancestral FID.
struct FidRecord {
  double fid = 0;
  int64_t samples = 0;     // train.fid_num
  int ddim_steps = 0;      // train.fid_steps
  std::string resize;      // the Inception input's resize
  bool published = false;  // pytorch-fid's published Inception weights
  double seconds = 0;
};

class TrainLog {
 public:
  TrainLog(const std::string& run_dir, bool progress_bar);
  ~TrainLog();
  // A plain line (stderr and train.log).
  void line(const std::string& text);
  // The live line (terminal only; throttled).
  void progress(const StepReport& r);
  // The interval record: metrics.jsonl plus a log line.
  void record(const StepReport& r);
  // A training FID measurement: metrics.jsonl ({"step": N, "train_fid": ..., and how it
  // was measured}) plus a log line.
  void record_fid(int64_t step, const FidRecord& fid);
  // A run that starts at `step` redoes what came after it: drops the metrics records of
  // later steps (and a line cut short by a kill) so each step appears once. Returns how
  // many lines were dropped.
  int64_t keep_metrics_through(int64_t step);

 private:
  std::string metrics_path_;
  FILE* log_ = nullptr;
  FILE* metrics_ = nullptr;
  bool tty_ = false;
  double last_progress_ = 0;
  bool progress_shown_ = false;
  void clear_progress();
  void write_metrics(const nlohmann::ordered_json& record);
};

std::string format_duration(double seconds);

}  // namespace ddpm
