// The commit protocol for every file that must survive a crash (DESIGN: write X.tmp,
// fsync, rename, fsync the directory, and only then move any pointer to it).
#pragma once

#include <string>

namespace ddpm::fs {

bool exists(const std::string& path);
bool is_dir(const std::string& path);
std::string dirname(const std::string& path);
std::string basename(const std::string& path);
std::string join(const std::string& a, const std::string& b);
// mkdir -p; an InputError names the path if it cannot be created.
void make_dirs(const std::string& path);

void fsync_path(const std::string& path);
// fsync(tmp); rename(tmp, final); fsync(dirname(final)).
void commit(const std::string& tmp, const std::string& final_path);
// commit() that never replaces: if final_path exists (even when it appeared while tmp
// was written), tmp is removed and an InputError says so.
void commit_new(const std::string& tmp, const std::string& final_path);
// Writes `content` to path through path.tmp and commit().
void write_text_atomic(const std::string& path, const std::string& content);
std::string read_text(const std::string& path);

}  // namespace ddpm::fs
