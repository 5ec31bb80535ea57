// The dataset directory's life cycle: a run writes OUT.partial, then swaps it into OUT in
// one rename, so readers see either the old dataset or the new one, never a mix.
#pragma once

#include <string>

namespace ddpm::data {

// "a/b/" -> "a/b"; refuses "", ".", ".." and "/" as dataset directories.
std::string normalize_dir(const std::string& dir);

// Refuses (InputError) a directory that holds anything but dataset entries (shards, the
// manifest, their .tmp files), so that --out never replaces a folder of the user's.
void check_replaceable_dataset_dir(const std::string& dir);

// Removes a dataset directory's entries and the directory itself (after the check above).
void remove_dataset_dir(const std::string& dir);

// Makes `staging` the new `out_dir`: an atomic exchange when out_dir exists (the old one
// is then removed), a rename when it does not. fsyncs the parent directory.
void swap_into_place(const std::string& staging, const std::string& out_dir);

}  // namespace ddpm::data
