// Shared by the libFuzzer harnesses (tests/fuzz, docs/testing.md). A harness feeds one
// input to a parser the way ddpm's apps do; the only acceptable outcomes are a normal
// return or an InputError (what the apps turn into "one line, exit 2"). Any other
// exception is a finding: the harness aborts so libFuzzer saves the input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/common.h"

namespace ddpm::fuzz {

// A directory of this process (under /dev/shm when there is one), made on first use and
// reused by every input: the readers take paths, not buffers.
const std::string& scratch_dir();
// Writes bytes to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, const uint8_t* data, size_t size);
std::string write_scratch(const std::string& name, const std::string& bytes);
// Removes scratch_dir()/name and anything below it.
void remove_scratch(const std::string& name);
// An empty directory scratch_dir()/name (emptied when it exists); returns its path.
std::string fresh_scratch_dir(const std::string& name);

// Inputs that hold several files (a manifest and a shard, MNIST's images and labels)
// join them with this line; split_files undoes it (missing parts are empty).
constexpr const char* kFileSeparator = "\n--ddpm-fuzz-next-file--\n";
std::vector<std::string> split_files(const uint8_t* data, size_t size, size_t parts);
std::string join_files(const std::vector<std::string>& parts);

// Runs body; returns normally on success or InputError, aborts on anything else.
template <typename Body>
void expect_clean(Body&& body) {
  try {
    body();
  } catch (const InputError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: not an InputError: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: unknown exception\n");
    std::abort();
  }
}

}  // namespace ddpm::fuzz
