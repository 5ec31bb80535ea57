// A streaming reader of archives through libarchive: tar (ustar, GNU, pax), plain or
// compressed (gzip, bzip2, xz), and zip, told apart by their content. Enough to read the
// CIFAR-10 tarball without extracting it.
#pragma once

#include <cstdint>
#include <string>

struct archive;

namespace ddpm::data {

class ArchiveReader {
 public:
  explicit ArchiveReader(const std::string& path);  // InputError if it cannot be opened
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  // Advances to the next regular file (skipping the rest of the current one and every
  // entry that is not a file); false at the end of the archive. InputError on a
  // malformed or truncated archive.
  bool next_file(std::string* name, int64_t* size);
  // Reads n bytes of the current file (an InputError if it holds fewer).
  void read(void* out, int64_t n);

 private:
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  archive* archive_ = nullptr;
  std::string name_;       // of the current file
  int64_t remaining_ = 0;  // its unread bytes
};

}  // namespace ddpm::data
