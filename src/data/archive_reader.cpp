#include "data/archive_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include "core/common.h"

namespace ddpm::data {
namespace {

constexpr size_t kReadBlock = size_t{1} << 16;

}  // namespace

ArchiveReader::ArchiveReader(const std::string& path) : path_(path), archive_(archive_read_new()) {
  if (archive_ == nullptr) throw Error("libarchive: archive_read_new failed");
  archive_read_support_filter_all(archive_);
  archive_read_support_format_tar(archive_);
  archive_read_support_format_gnutar(archive_);
  archive_read_support_format_zip(archive_);
  if (archive_read_open_filename(archive_, path.c_str(), kReadBlock) != ARCHIVE_OK) {
    const std::string why = archive_error_string(archive_) ? archive_error_string(archive_) : "unknown error";
    archive_read_free(archive_);
    input_error(path, ": cannot open the archive (", why, ")");
  }
}

ArchiveReader::~ArchiveReader() { archive_read_free(archive_); }

void ArchiveReader::fail(const std::string& what) const {
  const char* why = archive_error_string(archive_);
  input_error(path_, name_.empty() ? "" : ": " + name_, ": ", what, " (", why ? why : "libarchive gave no reason", ")");
}

bool ArchiveReader::next_file(std::string* name, int64_t* size) {
  for (;;) {
    archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(archive_, &entry);
    if (rc == ARCHIVE_EOF) return false;
    // ARCHIVE_WARN: a readable entry with something odd about it (e.g. a checksum form).
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) fail("a damaged or truncated archive");
    name_ = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    if (!archive_entry_size_is_set(entry) || archive_entry_size(entry) < 0) fail("an entry without a size");
    *name = name_;
    *size = remaining_ = archive_entry_size(entry);
    return true;
  }
}

void ArchiveReader::read(void* out, int64_t n) {
  if (n < 0 || n > remaining_) fail(cat("wanted ", n, " bytes, ", remaining_, " are left in the entry"));
  auto* bytes = static_cast<uint8_t*>(out);
  for (int64_t got = 0; got < n;) {
    const la_ssize_t r = archive_read_data(archive_, bytes + got, static_cast<size_t>(n - got));
    if (r < 0) fail("a damaged or truncated archive");
    if (r == 0) fail(cat("truncated: the entry ends after ", got, " of ", n, " bytes"));
    got += r;
  }
  remaining_ -= n;
}

}  // namespace ddpm::data
