#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "core/common.h"
#include "data/checksum.h"
#include "data/decode.h"
#include "data/progress.h"
#include "data/resize.h"
#include "data/shard_writer.h"

namespace ddpm::data {
namespace {

struct Processed {
  Image image;
  uint32_t checksum = 0;
  std::string error;  // non-empty: skip this item
};

// Decode (if encoded), convert channels, resize: everything that may run in parallel.
void process(SourceItem& item, int channels, int resolution, Processed* out) {
  out->error.clear();
  if (!item.read_error.empty()) {
    out->error = item.read_error;
    return;
  }
  try {
    Image image = prepare_image(item, channels, resolution);
    out->checksum = crc32_of(image.pixels.data(), image.pixels.size());
    out->image = std::move(image);
  } catch (const InputError& e) {
    out->error = e.what();
  }
}

// Runs body(i) for i in [0, n) on `threads` threads (the caller's included).
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& body) {
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (int64_t i = next++; i < n; i = next++) body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = n;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads && t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

Image prepare_image(SourceItem& item, int channels, int resolution) {
  // An encoded item of 0 bytes (an empty file, an empty LMDB value) has no raw pixels either.
  if (item.encoded.empty() && item.raw.pixels.empty()) input_error("empty (0 bytes), not an image");
  Image image = item.encoded.empty() ? std::move(item.raw) : decode_image(item.encoded.data(), item.encoded.size());
  image = convert_channels(std::move(image), channels);
  if (resolution > 0 && (image.height != resolution || image.width != resolution)) {
    image = center_crop_resize(image, resolution);
  }
  return image;
}

PrepareReport prepare_dataset(ImageSource& source, const PrepareOptions& opt) {
  if (opt.resolution < 0 || opt.resolution > kMaxSide) input_error("--resolution must be in 1..", kMaxSide);
  if (opt.limit < 0) input_error("--limit must be positive");
  const int64_t total = opt.limit > 0 ? std::min(opt.limit, source.size()) : source.size();
  const int channels = opt.force_rgb ? 3 : source.native_channels();
  const int threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
  const bool tty = isatty(STDERR_FILENO) == 1;
  const auto on_skip = opt.on_skip ? opt.on_skip : [tty](const std::string& what) {
    // On a terminal, first clear the progress bar's line.
    std::fprintf(stderr, "%sddpm_prepare: warning: %s; skipped\n", tty ? "\r\033[K" : "", what.c_str());
  };

  DatasetWriter writer(opt.out_dir, source.description(), total, opt.num_shards, opt.shard_size, source.has_labels());
  bool shape_known = opt.resolution > 0;
  ImageShape shape{opt.resolution, opt.resolution, channels};
  if (shape_known) writer.set_shape(shape);

  PrepareReport report;
  ProgressBar bar("ddpm_prepare", total, opt.progress);
  const int64_t batch = 64 * static_cast<int64_t>(threads);
  std::vector<SourceItem> items(static_cast<size_t>(batch));
  std::vector<Processed> done(static_cast<size_t>(batch));
  for (int64_t first = 0; first < total;) {
    int64_t n = 0;
    while (n < batch && first + n < total && source.next(&items[static_cast<size_t>(n)])) ++n;
    if (n == 0) input_error(source.description(), ": ended after ", first, " of ", total, " images");
    parallel_for(n, threads, [&](int64_t i) {
      process(items[static_cast<size_t>(i)], channels, opt.resolution, &done[static_cast<size_t>(i)]);
    });
    for (int64_t i = 0; i < n; ++i) {
      Processed& p = done[static_cast<size_t>(i)];
      if (p.error.empty() && !shape_known) {
        shape = p.image.shape();
        writer.set_shape(shape);
        shape_known = true;
      } else if (p.error.empty() && p.image.shape() != shape) {
        p.error = cat("is ", p.image.height, "x", p.image.width, ", the dataset is ", shape.height, "x", shape.width,
                      " (from its first image); use --resolution");
      }
      const SourceItem& item = items[static_cast<size_t>(i)];
      if (!p.error.empty()) {
        const std::string what = cat(item.name, ": ", p.error);
        if (opt.strict) input_error(what, " (--strict)");
        on_skip(what);
        ++report.skipped;
        continue;
      }
      writer.add(first + i, p.image.pixels.data(), p.checksum, item.label);
    }
    first += n;
    bar.update(first);
  }
  if (!shape_known) input_error(source.description(), ": no image could be imported (", report.skipped, " skipped)");
  report.manifest = writer.commit();
  bar.finish();
  report.seconds = bar.seconds();
  return report;
}

}  // namespace ddpm::data
