#include "data/source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/common.h"

namespace ddpm::data {

Split parse_split(const std::string& text) {
  if (text == "train") return Split::kTrain;
  if (text == "test") return Split::kTest;
  input_error("--split must be train or test, not '", text, "'");
}

bool read_file_bytes(const std::string& path, int64_t max_bytes, std::vector<uint8_t>* out, std::string* error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = cat("cannot open (", std::strerror(errno), ")");
    return false;
  }
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (!ok) *error = "not a regular file";
  if (ok && st.st_size > kMaxSourceFileBytes) {
    *error = cat("file of ", st.st_size, " bytes is over the limit of ", kMaxSourceFileBytes);
    ok = false;
  }
  if (ok) {
    const int64_t want = max_bytes < 0 ? st.st_size : std::min<int64_t>(max_bytes, st.st_size);
    out->resize(static_cast<size_t>(want));
    int64_t done = 0;
    while (ok && done < want) {
      const ssize_t got = read(fd, out->data() + done, static_cast<size_t>(want - done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        *error = got < 0 ? cat("read failed (", std::strerror(errno), ")") : "file shrank while being read";
        ok = false;
      }
      done += got > 0 ? got : 0;
    }
  }
  close(fd);
  return ok;
}

}  // namespace ddpm::data
