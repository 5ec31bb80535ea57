// Paths, directories and the commit protocol for every file that must survive a crash
// (DESIGN: write X.tmp, fsync, rename, fsync the directory, and only then move any
// pointer to it): write_atomically is the one implementation of it.
#pragma once

#include <functional>
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

// Whether a committed file may take the place of one already there.
enum class Overwrite { kReplace, kRefuse };

// `write(tmp)` writes the whole file at tmp = path + ".tmp"; then tmp is fsynced, renamed
// to path and the directory fsynced. If `write` throws, tmp is removed and the exception
// goes on, and path is untouched. With Overwrite::kRefuse an existing path (even one that
// appeared while tmp was written: renameat2's RENAME_NOREPLACE) is an InputError, and
// the file there stays as it was.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      Overwrite overwrite = Overwrite::kReplace);
// write_atomically of a text.
void write_text_atomic(const std::string& path, const std::string& content);
std::string read_text(const std::string& path);

}  // namespace ddpm::fs
