#include "data/tar_reader.h"

#include <cstring>
#include <vector>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm::data {
namespace {

constexpr int64_t kBlock = 512;
constexpr int64_t kMaxLongName = 4096;

// Tar numbers: NUL/space-terminated octal, or GNU base-256 when the top bit is set.
bool parse_number(const char* field, int len, int64_t* out) {
  const auto* f = reinterpret_cast<const unsigned char*>(field);
  if (f[0] & 0x80) {
    if (f[0] != 0x80) return false;  // negative or over-long: refused
    int64_t v = 0;
    for (int i = 1; i < len; ++i) {
      if (v > (INT64_MAX >> 8)) return false;
      v = (v << 8) | f[i];
    }
    *out = v;
    return true;
  }
  int64_t v = 0;
  int i = 0;
  while (i < len && field[i] == ' ') ++i;
  bool any = false;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v > (INT64_MAX >> 3)) return false;
    v = v * 8 + (field[i] - '0');
    any = true;
  }
  if (i < len && field[i] != '\0' && field[i] != ' ') return false;
  *out = v;
  return any;
}

std::string field_string(const char* field, size_t len) { return std::string(field, strnlen(field, len)); }

}  // namespace

TarReader::TarReader(const std::string& path) : path_(path) {
  if (!fs::exists(path)) input_error(path, ": no such file");
  if (fs::is_dir(path)) input_error(path, ": is a directory, expected a tar archive");
  gz_ = gzopen(path.c_str(), "rb");
  if (!gz_) input_error(path, ": cannot open");
  gzbuffer(gz_, 1 << 20);
}

TarReader::~TarReader() {
  if (gz_) gzclose(gz_);
}

void TarReader::read_raw(void* out, int64_t n, const char* what) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(n < (1 << 30) ? n : (1 << 30));
    const int got = gzread(gz_, p, chunk);
    if (got <= 0) {
      int err = Z_OK;
      const char* msg = gzerror(gz_, &err);
      if (err != Z_OK && err != Z_BUF_ERROR) input_error(path_, ": corrupt compressed data (", msg, ")");
      input_error(path_, ": truncated archive (ends inside ", what, ")");
    }
    p += got;
    n -= got;
  }
}

void TarReader::skip(int64_t n) {
  char buf[64 * 1024];
  while (n > 0) {
    const int64_t k = n < static_cast<int64_t>(sizeof(buf)) ? n : static_cast<int64_t>(sizeof(buf));
    read_raw(buf, k, "a file");
    n -= k;
  }
}

void TarReader::read(void* out, int64_t n) {
  DDPM_CHECK(n <= remaining_, "read past the end of a tar entry");
  read_raw(out, n, "a file");
  remaining_ -= n;
}

bool TarReader::next_file(std::string* name, int64_t* size) {
  skip(remaining_ + padding_);
  remaining_ = padding_ = 0;
  std::string long_name;
  for (;;) {
    char header[kBlock];
    const int got = gzread(gz_, header, kBlock);
    // Archives end with zero blocks; some writers stop right after the last file.
    if (got == 0 && gzeof(gz_)) return false;
    if (got != kBlock) input_error(path_, ": truncated or corrupt archive (unreadable header)");
    bool all_zero = true;
    for (char c : header) all_zero = all_zero && c == 0;
    if (all_zero) return false;

    int64_t stored_sum = 0, entry_size = 0;
    if (!parse_number(header + 148, 8, &stored_sum) || !parse_number(header + 124, 12, &entry_size)) {
      input_error(path_, ": not a tar archive (bad header fields)");
    }
    int64_t sum = 0;
    for (int i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
    if (sum != stored_sum) input_error(path_, ": not a tar archive (header checksum mismatch)");
    const int64_t padded = (entry_size + kBlock - 1) / kBlock * kBlock;
    const char type = header[156];

    if (type == 'L') {  // GNU long name: the data is the next entry's name
      if (entry_size > kMaxLongName) input_error(path_, ": corrupt archive (long name of ", entry_size, " bytes)");
      std::vector<char> buf(static_cast<size_t>(padded));
      read_raw(buf.data(), padded, "a long name");
      long_name = field_string(buf.data(), static_cast<size_t>(entry_size));
      continue;
    }
    if (type != '0' && type != '\0' && type != '7') {  // directories, links, pax headers: skip
      skip(padded);
      continue;
    }
    if (!long_name.empty()) {
      *name = long_name;
    } else {
      const std::string prefix = std::memcmp(header + 257, "ustar", 5) == 0 ? field_string(header + 345, 155) : "";
      const std::string base = field_string(header, 100);
      *name = prefix.empty() ? base : prefix + "/" + base;
    }
    *size = entry_size;
    remaining_ = entry_size;
    padding_ = padded - entry_size;
    return true;
  }
}

}  // namespace ddpm::data
