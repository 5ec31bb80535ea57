#include "train/train_log.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>

#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"

namespace ddpm {
namespace {
std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}
// JSON numbers: non-finite values become null.
std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}
}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long long t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 86400) std::snprintf(buf, sizeof(buf), "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
  else if (t >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", t / 60, t % 60);
  return buf;
}

TrainLog::TrainLog(const std::string& run_dir, bool progress_bar) {
  log_ = std::fopen(fs::join(run_dir, "train.log").c_str(), "a");
  metrics_path_ = fs::join(run_dir, "metrics.jsonl");
  metrics_ = std::fopen(metrics_path_.c_str(), "a");
  if (!log_ || !metrics_) input_error(run_dir, ": cannot append to train.log / metrics.jsonl");
  tty_ = progress_bar && isatty(STDERR_FILENO);
}

TrainLog::~TrainLog() {
  clear_progress();
  if (log_) std::fclose(log_);
  if (metrics_) std::fclose(metrics_);
}

void TrainLog::clear_progress() {
  if (progress_shown_) std::fprintf(stderr, "\r\033[K");
  progress_shown_ = false;
}

void TrainLog::line(const std::string& text) {
  clear_progress();
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fprintf(log_, "[%s] %s\n", timestamp().c_str(), text.c_str());
  std::fflush(log_);
}

void TrainLog::progress(const StepReport& r) {
  if (!tty_) return;
  const double now = now_seconds();
  if (now - last_progress_ < 0.25 && r.step < r.total_steps) return;
  last_progress_ = now;
  std::fprintf(stderr, "\r\033[Kstep %lld/%lld  loss %.4f  lr %.2e  |g| %.3f  %.1f img/s  ETA %s",
               static_cast<long long>(r.step), static_cast<long long>(r.total_steps), r.loss, r.lr, r.grad_norm,
               r.images_per_s, format_duration(r.eta_s).c_str());
  std::fflush(stderr);
  progress_shown_ = true;
}

int64_t TrainLog::keep_metrics_through(int64_t step) {
  std::fflush(metrics_);
  const std::string text = fs::read_text(metrics_path_);
  std::string kept;
  int64_t dropped = 0;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = text.find('\n', begin);
    const std::string line = text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    begin = end == std::string::npos ? text.size() : end + 1;
    // Records start {"step": N, as record() writes them; a line without its newline was
    // cut short.
    long long s = -1;
    if (end != std::string::npos && std::sscanf(line.c_str(), "{\"step\": %lld,", &s) == 1 && s <= step) {
      kept += line + "\n";
    } else if (!line.empty()) {
      ++dropped;
    }
  }
  if (dropped == 0) return 0;
  std::fclose(metrics_);
  metrics_ = nullptr;
  fs::write_text_atomic(metrics_path_, kept);
  metrics_ = std::fopen(metrics_path_.c_str(), "a");
  if (!metrics_) input_error(metrics_path_, ": cannot append");
  return dropped;
}

void TrainLog::record(const StepReport& r) {
  std::fprintf(metrics_,
               "{\"step\": %lld, \"iteration\": %lld, \"loss\": %s, \"loss_q0\": %s, \"loss_q1\": %s, \"loss_q2\": %s, "
               "\"loss_q3\": %s, \"lr\": %s, \"grad_norm\": %s, \"img_per_s\": %s, \"skipped\": %lld, "
               "\"comm_wait_s\": %s, \"time\": %lld}\n",
               static_cast<long long>(r.step), static_cast<long long>(r.iteration), num(r.loss).c_str(),
               num(r.loss_quartile[0]).c_str(), num(r.loss_quartile[1]).c_str(), num(r.loss_quartile[2]).c_str(),
               num(r.loss_quartile[3]).c_str(), num(r.lr).c_str(), num(r.grad_norm).c_str(),
               num(r.images_per_s).c_str(), static_cast<long long>(r.skipped), num(r.comm_wait_s).c_str(),
               static_cast<long long>(std::time(nullptr)));
  std::fflush(metrics_);
  line(cat("step ", r.step, "/", r.total_steps, "  loss ", num(r.loss), "  lr ", num(r.lr), "  |g| ", num(r.grad_norm),
           "  ", num(r.images_per_s), " img/s  ETA ", format_duration(r.eta_s),
           r.skipped ? cat("  skipped ", r.skipped) : std::string()));
}

void TrainLog::record_fid(int64_t step, double fid, int64_t samples, int ddim_steps, double seconds) {
  // FID to a fixed number of decimals: %g's six digits would round a 5-digit value.
  char value[64] = "null";
  if (std::isfinite(fid)) std::snprintf(value, sizeof(value), "%.6f", fid);
  std::fprintf(metrics_, "{\"step\": %lld, \"fid\": %s, \"fid_num\": %lld, \"fid_steps\": %d, \"fid_s\": %s, \"time\": %lld}\n",
               static_cast<long long>(step), value, static_cast<long long>(samples), ddim_steps,
               num(seconds).c_str(), static_cast<long long>(std::time(nullptr)));
  std::fflush(metrics_);
  line(cat("FID ", value, " at step ", step, " (", samples, " EMA samples, DDIM ", ddim_steps, " steps, ",
           static_cast<int>(seconds), " s)"));
}

}  // namespace ddpm
