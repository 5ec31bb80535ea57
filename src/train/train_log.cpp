#include "train/train_log.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>

#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"

#include <nlohmann/json.hpp>

namespace ddpm {
namespace {
std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}
// Log numbers: six digits, non-finite values as null (as in metrics.jsonl).
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
    // Every record has its step; a line without its newline was cut short.
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool whole = end != std::string::npos && record.is_object() && record.contains("step") &&
                       record["step"].is_number_integer();
    if (whole && record["step"].get<int64_t>() <= step) {
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

void TrainLog::write_metrics(const nlohmann::ordered_json& record) {
  std::fprintf(metrics_, "%s\n", record.dump().c_str());  // NaN and infinities become null
  std::fflush(metrics_);
}

void TrainLog::record(const StepReport& r) {
  nlohmann::ordered_json m;
  m["step"] = r.step, m["iteration"] = r.iteration, m["loss"] = r.loss;
  for (int q = 0; q < 4; ++q) m[cat("loss_q", q)] = r.loss_quartile[q];
  m["lr"] = r.lr, m["grad_norm"] = r.grad_norm, m["img_per_s"] = r.images_per_s, m["skipped"] = r.skipped;
  m["comm_wait_s"] = r.comm_wait_s, m["time"] = static_cast<int64_t>(std::time(nullptr));
  write_metrics(m);
  line(cat("step ", r.step, "/", r.total_steps, "  loss ", num(r.loss), "  lr ", num(r.lr), "  |g| ", num(r.grad_norm),
           "  ", num(r.images_per_s), " img/s  ETA ", format_duration(r.eta_s),
           r.skipped ? cat("  skipped ", r.skipped) : std::string()));
}

void TrainLog::record_fid(int64_t step, const FidRecord& f) {
  nlohmann::ordered_json m;
  m["step"] = step, m["train_fid"] = f.fid, m["fid_sampler"] = "ddim", m["fid_steps"] = f.ddim_steps;
  m["fid_num"] = f.samples, m["fid_resize"] = f.resize, m["inception_weights"] = f.published ? "published" : "other";
  m["fid_s"] = f.seconds, m["time"] = static_cast<int64_t>(std::time(nullptr));
  write_metrics(m);
  // A fixed number of decimals: %g's six digits would round a 5-digit value.
  char value[64] = "null";
  if (std::isfinite(f.fid)) std::snprintf(value, sizeof(value), "%.6f", f.fid);
  line(cat("training FID ", value, " at step ", step, " (DDIM ", f.ddim_steps, " steps, ", f.samples,
           " EMA samples, resize ", f.resize, ", ", f.published ? "published" : "other", " Inception weights; ",
           static_cast<int>(f.seconds), " s)"));
}

}  // namespace ddpm
