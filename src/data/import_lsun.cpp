// LSUN as exported by the official tools (https://github.com/fyu/lsun): an LMDB whose
// keys are image ids and whose values are encoded images (WebP, some JPEG), read in key
// order through liblmdb, read-only and without a lock file (the export may sit on a
// read-only file system). The LSUN scenes are colour photographs: the dataset is RGB
// and the occasional grey JPEG is replicated into three channels.
//
// LMDB trusts its file's page structure: only the header is validated by liblmdb, so
// import LSUN from the official download, not from an untrusted source.
#include <lmdb.h>

#include "core/common.h"
#include "core/fs.h"
#include "data/source.h"

namespace ddpm::data {
namespace {

std::string printable_key(const MDB_val& key) {
  const auto* p = static_cast<const unsigned char*>(key.mv_data);
  bool printable = key.mv_size > 0 && key.mv_size <= 256;
  for (size_t i = 0; printable && i < key.mv_size; ++i) printable = p[i] >= 0x20 && p[i] < 0x7F;
  if (printable) return std::string(reinterpret_cast<const char*>(p), key.mv_size);
  static const char* kHex = "0123456789abcdef";
  std::string hex = "0x";
  for (size_t i = 0; i < key.mv_size && i < 64; ++i) {
    hex += kHex[p[i] >> 4];
    hex += kHex[p[i] & 15];
  }
  return hex;
}

class LsunSource : public ImageSource {
 public:
  explicit LsunSource(const std::string& path) : path_(path) {}
  // Separate from the constructor so that the destructor releases what a failed open
  // acquired.
  void open() {
    const bool is_dir = fs::is_dir(path_);
    const std::string& path = path_;
    if (is_dir && !fs::exists(fs::join(path, "data.mdb"))) input_error(path, ": no data.mdb (not an LMDB export)");
    check(mdb_env_create(&env_), "cannot create an LMDB environment");
    const unsigned flags = MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | (is_dir ? 0u : MDB_NOSUBDIR);
    check(mdb_env_open(env_, path.c_str(), flags, 0644), "not a readable LMDB");
    check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn_), "cannot start a read transaction");
    check(mdb_dbi_open(txn_, nullptr, 0, &dbi_), "cannot open the main database");
    MDB_stat stat;
    check(mdb_stat(txn_, dbi_, &stat), "cannot read the database statistics");
    entries_ = static_cast<int64_t>(stat.ms_entries);
    if (entries_ == 0) input_error(path, ": the LMDB holds no images");
    check(mdb_cursor_open(txn_, dbi_, &cursor_), "cannot open a cursor");
    description_ = cat("lsun from ", fs::basename(is_dir ? path : fs::dirname(path)));
  }
  ~LsunSource() override {
    if (cursor_) mdb_cursor_close(cursor_);
    if (txn_) mdb_txn_abort(txn_);
    if (env_) mdb_env_close(env_);
  }

  std::string description() const override { return description_; }
  int64_t size() const override { return entries_; }
  bool has_labels() const override { return false; }
  int native_channels() override { return 3; }

  bool next(SourceItem* item) override {
    if (read_ >= entries_) return false;
    MDB_val key, value;
    const int rc = mdb_cursor_get(cursor_, &key, &value, read_ == 0 ? MDB_FIRST : MDB_NEXT);
    if (rc == MDB_NOTFOUND) input_error(path_, ": the LMDB ended after ", read_, " of ", entries_, " entries");
    check(rc, "read failed");
    ++read_;
    item->name = cat(fs::basename(path_), ":", printable_key(key));
    item->raw = Image();
    item->label = -1;
    item->read_error.clear();
    item->encoded.clear();
    if (static_cast<int64_t>(value.mv_size) > kMaxSourceFileBytes) {
      item->read_error = cat("value of ", value.mv_size, " bytes is over the limit of ", kMaxSourceFileBytes);
    } else {
      const auto* p = static_cast<const uint8_t*>(value.mv_data);
      item->encoded.assign(p, p + value.mv_size);
    }
    return true;
  }

 private:
  std::string path_, description_;
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_cursor* cursor_ = nullptr;
  int64_t entries_ = 0, read_ = 0;

  void check(int rc, const char* what) const {
    if (rc != MDB_SUCCESS) input_error(path_, ": ", what, " (", mdb_strerror(rc), ")");
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
