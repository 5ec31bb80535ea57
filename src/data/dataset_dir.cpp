#include "data/dataset_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/common.h"
#include "core/fs.h"
#include "data/shard_format.h"

namespace ddpm::data {
namespace {

std::vector<std::string> entries_of(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) input_error(dir, ": cannot list the directory (", std::strerror(errno), ")");
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

}  // namespace

std::string normalize_dir(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const std::string base = fs::basename(d);
  if (d.empty() || d == "/" || base == "." || base == "..") {
    input_error("'", dir, "' cannot be a dataset directory (name a new or dataset folder)");
  }
  return d;
}

void check_replaceable_dataset_dir(const std::string& dir) {
  if (!fs::is_dir(dir)) input_error(dir, ": exists and is not a directory");
  for (const std::string& name : entries_of(dir)) {
    if (!is_dataset_entry_name(name)) {
      input_error(dir, ": exists and holds '", name,
                  "', which is not part of a ddpm dataset; refusing to replace it (choose another --out)");
    }
  }
}

void remove_dataset_dir(const std::string& dir) {
  check_replaceable_dataset_dir(dir);
  for (const std::string& name : entries_of(dir)) {
    const std::string path = fs::join(dir, name);
    if (unlink(path.c_str()) != 0) input_error(path, ": cannot remove (", std::strerror(errno), ")");
  }
  if (rmdir(dir.c_str()) != 0) input_error(dir, ": cannot remove (", std::strerror(errno), ")");
}

void swap_into_place(const std::string& staging, const std::string& out_dir) {
  const std::string parent = fs::dirname(out_dir);
  if (!fs::exists(out_dir)) {
    if (rename(staging.c_str(), out_dir.c_str()) != 0) {
      input_error(out_dir, ": cannot move ", staging, " into place (", std::strerror(errno), ")");
    }
    fs::fsync_path(parent);
    return;
  }
  check_replaceable_dataset_dir(out_dir);
  if (renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, out_dir.c_str(), RENAME_EXCHANGE) == 0) {
    fs::fsync_path(parent);
    remove_dataset_dir(staging);  // now holds the previous dataset
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    input_error(out_dir, ": cannot swap in ", staging, " (", std::strerror(errno), ")");
  }
  // A file system without RENAME_EXCHANGE: move the old dataset aside first. A crash in
  // between leaves OUT.old and OUT.partial, both whole, never a mix in OUT.
  const std::string old = out_dir + ".old";
  if (fs::exists(old)) remove_dataset_dir(old);
  if (rename(out_dir.c_str(), old.c_str()) != 0 || rename(staging.c_str(), out_dir.c_str()) != 0) {
    input_error(out_dir, ": cannot move ", staging, " into place (", std::strerror(errno), ")");
  }
  fs::fsync_path(parent);
  remove_dataset_dir(old);
}

}  // namespace ddpm::data
