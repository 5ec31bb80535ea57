#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/common.h"

namespace ddpm::fs {

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dirname(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string basename(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty() || b[0] == '/') return a.empty() ? b : (b.empty() ? a : b);
  return a.back() == '/' ? a + b : a + "/" + b;
}

void make_dirs(const std::string& path) {
  if (path.empty() || is_dir(path)) return;
  make_dirs(dirname(path));
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    input_error(path, ": cannot create the directory (", std::strerror(errno), ")");
  }
  // EEXIST from a file of that name (or a race that left one): still not a directory.
  if (!is_dir(path)) input_error(path, ": exists and is not a directory");
}

void fsync_path(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) input_error(path, ": cannot open for fsync (", std::strerror(errno), ")");
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the data is still safe.
  if (rc != 0 && err != EINVAL) input_error(path, ": fsync failed (", std::strerror(err), ")");
}

namespace {

// rename(tmp, path), or with kRefuse a rename that fails where path exists:
// renameat2's RENAME_NOREPLACE checks and renames in one step; where the file system
// lacks it, link() fails on an existing name just as atomically. 0 or an errno.
int move_into_place(const std::string& tmp, const std::string& path, Overwrite overwrite) {
  if (overwrite == Overwrite::kReplace) return rename(tmp.c_str(), path.c_str()) == 0 ? 0 : errno;
  if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  if (link(tmp.c_str(), path.c_str()) != 0) return errno;
  unlink(tmp.c_str());
  return 0;
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      Overwrite overwrite) {
  if (overwrite == Overwrite::kRefuse && exists(path)) input_error(path, ": exists (refusing to overwrite it)");
  const std::string tmp = path + ".tmp";
  try {
    write(tmp);
    fsync_path(tmp);
  } catch (...) {
    unlink(tmp.c_str());
    throw;
  }
  if (const int err = move_into_place(tmp, path, overwrite); err != 0) {
    unlink(tmp.c_str());
    if (err == EEXIST) input_error(path, ": exists (refusing to overwrite it)");
    input_error(path, ": cannot move ", tmp, " into place (", std::strerror(err), ")");
  }
  fsync_path(dirname(path));
}

void write_text_atomic(const std::string& path, const std::string& content) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) input_error(path, ": cannot write (disk full?)");
  });
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error(path, ": cannot read the file");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace ddpm::fs
