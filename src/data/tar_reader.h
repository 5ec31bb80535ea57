// A streaming reader for tar archives (ustar and GNU), plain or gzip-compressed (zlib
// detects which): enough to read the CIFAR-10 tarball without extracting it.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>

namespace ddpm::data {

class TarReader {
 public:
  explicit TarReader(const std::string& path);  // InputError if it cannot be opened
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Advances to the next regular file (skipping the rest of the current one);
  // false at the end of the archive. InputError on a malformed or truncated archive.
  bool next_file(std::string* name, int64_t* size);
  // Reads n bytes of the current file.
  void read(void* out, int64_t n);

 private:
  std::string path_;
  gzFile gz_ = nullptr;
  int64_t remaining_ = 0;  // unread bytes of the current file
  int64_t padding_ = 0;    // zero bytes after it, up to the next 512-byte block
  void read_raw(void* out, int64_t n, const char* what);
  void skip(int64_t n);
};

}  // namespace ddpm::data
