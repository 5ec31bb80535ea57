// .npz files as the evaluation reads them (reference batches, features, pytorch-fid
// statistics): the archive, every array's header, rows streamed and the whole array,
// the conversions, read_fid_stats. What the reader accepts, write_npz must write back
// and the reader must read again to the same dtype, shape and bytes.
#include <cstdlib>

#include "eval/frechet.h"
#include "io/npz.h"
#include "fuzz_util.h"

namespace {

using namespace ddpm;

// Streams an array three rows at a time, as a caller with a bounded buffer would.
void stream_rows(const NpzReader& npz, const std::string& name) {
  NpyRowReader rows = npz.rows(name);
  if (rows.row_bytes() > (uint64_t{1} << 20)) return;  // a caller's own limit on what it buffers
  std::vector<uint8_t> buffer(3 * rows.row_bytes());
  while (rows.read(3, buffer.data()) > 0) {
  }
}

void read_and_rewrite(const std::string& path) {
  const NpzReader npz(path);
  std::vector<std::pair<std::string, NpyView>> views;
  std::vector<NpyArray> arrays;
  for (const std::string& name : npz.names()) {
    npz.header(name);
    stream_rows(npz, name);
    arrays.push_back(npz.read(name));
    if (arrays.back().dtype != NpyDType::kUnicode) {
      arrays.back().to_doubles();
    } else if (arrays.back().shape.empty()) {
      npz.read_text(name);
    }
  }
  for (size_t i = 0; i < arrays.size(); ++i) views.emplace_back(npz.names()[i], NpyView::of(arrays[i]));
  const std::string rewritten = fuzz::scratch_dir() + "/rewritten.npz";
  write_npz(rewritten, views, Overwrite::kReplace);
  const NpzReader again(rewritten);
  if (again.names() != npz.names()) std::abort();
  for (size_t i = 0; i < arrays.size(); ++i) {
    const NpyArray back = again.read(npz.names()[i]);
    if (back.dtype != arrays[i].dtype || back.item_bytes != arrays[i].item_bytes || back.shape != arrays[i].shape ||
        back.bytes != arrays[i].bytes) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch("input.npz", data, size);
  fuzz::expect_clean([&] { read_and_rewrite(path); });
  fuzz::expect_clean([&] { eval::read_fid_stats(path); });
  return 0;
}
