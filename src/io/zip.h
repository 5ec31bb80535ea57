// The zip container of .npz files, through libzip: reading what Python's zipfile writes
// for numpy (members stored or deflated, zip64 records, data descriptors) and writing
// stored archives that np.load reads. libzip checks the archive's structure on opening
// (ZIP_CHECKCONS: the central directory against every local header) and each member's
// CRC-32 when it has been read to its end; this layer adds what numpy never writes and so
// is refused (encryption, compression other than deflate, two members of one name) and
// turns every problem into an InputError "<file>: <problem>".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct zip;
struct zip_file;

namespace ddpm {

// A member name fit for a one-line message: quoted, non-printable bytes as \xNN.
std::string printable_name(const std::string& name);

struct ZipMember {
  std::string name;
  uint64_t index = 0;  // in the archive's directory
  uint64_t size = 0;   // uncompressed bytes
};

// A member's uncompressed bytes, front to back.
class ZipMemberStream {
 public:
  ZipMemberStream(zip_file* file, const ZipMember& member, std::string where);
  ~ZipMemberStream();
  ZipMemberStream(const ZipMemberStream&) = delete;
  ZipMemberStream& operator=(const ZipMemberStream&) = delete;

  // Reads exactly n bytes (an InputError if the member has fewer).
  void read(void* out, uint64_t n);
  // Bytes not read yet.
  uint64_t remaining() const { return size_ - done_; }
  // Reads whatever is left and has libzip check the member's CRC-32 at its end. Call it
  // after the last read.
  void finish();

 private:
  [[noreturn]] void fail(const std::string& what) const;

  zip_file* file_;
  std::string where_;
  uint64_t size_, done_ = 0;
};

class ZipReader {
 public:
  // Opens the archive and checks its directory and every member's local header.
  explicit ZipReader(const std::string& path);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<ZipMember>& members() const { return members_; }
  // nullptr when there is no member of that name.
  const ZipMember* find(const std::string& name) const;
  // The member's bytes; the stream reads from this reader's archive, which must outlive it.
  std::unique_ptr<ZipMemberStream> open(const ZipMember& member) const;

 private:
  std::string path_;
  zip* archive_ = nullptr;
  std::vector<ZipMember> members_;
};

// A member to write: its bytes are the concatenation of `parts` (not copied; they must
// stay valid until write_stored_zip returns).
struct ZipEntry {
  std::string name;
  std::vector<std::pair<const void*, uint64_t>> parts;
};

// Writes a zip archive of stored (uncompressed) members to `path`, zip64 records where
// sizes need them, every date 1980-01-01 00:00 so that equal content makes equal files.
// `name` is the file to name in errors (the caller may write to a temporary path).
void write_stored_zip(const std::string& path, const std::string& name, const std::vector<ZipEntry>& entries);

}  // namespace ddpm
