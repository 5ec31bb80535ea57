// LSUN as exported by the official tools (https://github.com/fyu/lsun): an LMDB whose
// keys are image ids and whose values are encoded images (WebP, some JPEG), read in key
// order through liblmdb, read-only and without a lock file (the export may sit on a
// read-only file system). The LSUN scenes are colour photographs: the dataset is RGB
// and the occasional grey JPEG is replicated into three channels.
//
// liblmdb trusts its file's page structure (it maps the file and follows the page
// numbers it finds), so a damaged data.mdb can kill the process that reads it with
// SIGSEGV or SIGBUS. The walk therefore runs in a child process that sends each entry
// through a pipe; if the child dies, the import stops with one line naming the file.
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/common.h"
#include "core/fs.h"
#include "data/source.h"

namespace ddpm::data {
namespace {

// A child that makes no progress for this long is stuck in a damaged page structure.
constexpr int kStallSeconds = 60;

std::string printable_key(const uint8_t* p, size_t n) {
  bool printable = n > 0 && n <= 256;
  for (size_t i = 0; printable && i < n; ++i) printable = p[i] >= 0x20 && p[i] < 0x7F;
  if (printable) return std::string(reinterpret_cast<const char*>(p), n);
  static const char* kHex = "0123456789abcdef";
  std::string hex = "0x";
  for (size_t i = 0; i < n && i < 64; ++i) {
    hex += kHex[p[i] >> 4];
    hex += kHex[p[i] & 15];
  }
  return hex;
}

// Messages from the child: a tag byte, then
//   'N' u64 entries            (first)          'E' u64 length, text   (an LMDB error)
//   'R' u64 key length, key, u64 value length, value ('B' instead: a value over the limit)
enum Tag : char { kEntries = 'N', kError = 'E', kRecord = 'R', kBigRecord = 'B' };

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool write_u64(int fd, uint64_t v) { return write_all(fd, &v, sizeof v); }

bool send_error(int fd, const std::string& what, int rc) {
  const std::string text = cat(what, " (", mdb_strerror(rc), ")");
  const char tag = kError;
  return write_all(fd, &tag, 1) && write_u64(fd, text.size()) && write_all(fd, text.data(), text.size());
}

// The child's whole life: open the environment, send the entry count, then every entry.
int walk_lmdb(const std::string& path, bool is_dir, int fd) {
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi = 0;
  MDB_cursor* cursor = nullptr;
  MDB_stat stat;
  int rc = mdb_env_create(&env);
  if (rc != MDB_SUCCESS) return !send_error(fd, "cannot create an LMDB environment", rc);
  const unsigned flags = MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | (is_dir ? 0u : MDB_NOSUBDIR);
  if ((rc = mdb_env_open(env, path.c_str(), flags, 0644)) != MDB_SUCCESS) return !send_error(fd, "not a readable LMDB", rc);
  if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn)) != MDB_SUCCESS) {
    return !send_error(fd, "cannot start a read transaction", rc);
  }
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &dbi)) != MDB_SUCCESS) return !send_error(fd, "cannot open the main database", rc);
  if ((rc = mdb_stat(txn, dbi, &stat)) != MDB_SUCCESS) return !send_error(fd, "cannot read the database statistics", rc);
  if ((rc = mdb_cursor_open(txn, dbi, &cursor)) != MDB_SUCCESS) return !send_error(fd, "cannot open a cursor", rc);
  const char entries_tag = kEntries;
  if (!write_all(fd, &entries_tag, 1) || !write_u64(fd, stat.ms_entries)) return 1;
  MDB_val key, value;
  for (MDB_cursor_op op = MDB_FIRST;; op = MDB_NEXT) {
    rc = mdb_cursor_get(cursor, &key, &value, op);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != MDB_SUCCESS) return !send_error(fd, "read failed", rc);
    const bool big = static_cast<int64_t>(value.mv_size) > kMaxSourceFileBytes;
    const char tag = big ? kBigRecord : kRecord;
    if (!write_all(fd, &tag, 1) || !write_u64(fd, key.mv_size) || !write_all(fd, key.mv_data, key.mv_size) ||
        !write_u64(fd, value.mv_size) || (!big && !write_all(fd, value.mv_data, value.mv_size))) {
      return 1;  // the parent stopped reading
    }
  }
}

class LsunSource : public ImageSource {
 public:
  explicit LsunSource(const std::string& path) : path_(path) {}
  // Separate from the constructor so that the destructor releases what a failed open
  // acquired.
  void open() {
    const bool is_dir = fs::is_dir(path_);
    if (is_dir && !fs::exists(fs::join(path_, "data.mdb"))) input_error(path_, ": no data.mdb (not an LMDB export)");
    int fds[2];
    if (pipe(fds) != 0) input_error(path_, ": cannot create a pipe (", std::strerror(errno), ")");
    child_ = fork();
    if (child_ < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      input_error(path_, ": cannot start the LMDB reader process (", std::strerror(errno), ")");
    }
    if (child_ == 0) {
      // A damaged page kills the child by the signal itself, which the parent reports;
      // handlers inherited from the parent (a crash reporter, a sanitizer) must not run.
      for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
      ::close(fds[0]);
      _exit(walk_lmdb(path_, is_dir, fds[1]));
    }
    ::close(fds[1]);
    fd_ = fds[0];
    char tag = read_tag();
    if (tag == kError) input_error(path_, ": ", read_text());
    if (tag != kEntries) fail_protocol();
    entries_ = static_cast<int64_t>(read_u64());
    if (entries_ == 0) input_error(path_, ": the LMDB holds no images");
    description_ = cat("lsun from ", fs::basename(is_dir ? path_ : fs::dirname(path_)));
  }
  ~LsunSource() override {
    if (fd_ >= 0) ::close(fd_);
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
  }

  std::string description() const override { return description_; }
  int64_t size() const override { return entries_; }
  bool has_labels() const override { return false; }
  int native_channels() override { return 3; }

  bool next(SourceItem* item) override {
    if (read_ >= entries_) return false;
    const char tag = read_tag();
    if (tag == kError) input_error(path_, ": ", read_text());
    if (tag != kRecord && tag != kBigRecord) fail_protocol();
    std::vector<uint8_t> key(checked_size(read_u64(), 1 << 20));
    read_exact(key.data(), key.size());
    const uint64_t value_size = read_u64();
    ++read_;
    item->name = cat(fs::basename(path_), ":", printable_key(key.data(), key.size()));
    item->raw = Image();
    item->label = -1;
    item->read_error.clear();
    item->encoded.clear();
    if (tag == kBigRecord) {
      item->read_error = cat("value of ", value_size, " bytes is over the limit of ", kMaxSourceFileBytes);
    } else {
      item->encoded.resize(checked_size(value_size, static_cast<uint64_t>(kMaxSourceFileBytes)));
      read_exact(item->encoded.data(), item->encoded.size());
    }
    return true;
  }

 private:
  std::string path_, description_;
  pid_t child_ = -1;
  int fd_ = -1;
  int64_t entries_ = 0, read_ = 0;

  // The pipe ended, or (stalled) made no progress for kStallSeconds: say why.
  [[noreturn]] void fail_reader(bool stalled) {
    int status = 0;
    std::string why = "its reader process stopped";
    if (stalled) {
      kill(child_, SIGKILL);
      why = cat("its reader process made no progress for ", kStallSeconds, " s");
    }
    if (waitpid(child_, &status, 0) == child_) {
      child_ = -1;
      if (WIFSIGNALED(status)) why = cat("its reader process was killed by ", strsignal(WTERMSIG(status)));
    }
    input_error(path_, ": damaged LMDB: ", why, " after ", read_, " of ", entries_, " entries");
  }
  [[noreturn]] void fail_protocol() { input_error(path_, ": damaged LMDB: unexpected data from its reader process"); }

  void read_exact(void* out, size_t n) {
    char* p = static_cast<char*>(out);
    while (n > 0) {
      pollfd pfd{fd_, POLLIN, 0};
      const int ready = poll(&pfd, 1, kStallSeconds * 1000);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) fail_reader(/*stalled=*/true);
      const ssize_t r = ::read(fd_, p, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail_reader(/*stalled=*/false);
      p += r;
      n -= static_cast<size_t>(r);
    }
  }
  char read_tag() {
    char tag = 0;
    read_exact(&tag, 1);
    return tag;
  }
  uint64_t read_u64() {
    uint64_t v = 0;
    read_exact(&v, sizeof v);
    return v;
  }
  size_t checked_size(uint64_t n, uint64_t limit) {
    if (n > limit) fail_protocol();
    return static_cast<size_t>(n);
  }
  std::string read_text() {
    std::string text(checked_size(read_u64(), 4096), '\0');
    read_exact(text.data(), text.size());
    return text;
  }
};

}  // namespace

std::unique_ptr<ImageSource> open_lsun(const std::string& path) {
  if (!fs::exists(path)) input_error(path, ": no such file or directory");
  auto source = std::make_unique<LsunSource>(path);
  source->open();
  return source;
}

}  // namespace ddpm::data
