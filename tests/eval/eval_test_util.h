// What the evaluation tests share: where the references are (the fixture
// eval_reference writes them), and numpy's check of the files a test wrote.
#pragma once

#include <cstdlib>
#include <string>

#include "fixtures.h"

namespace ddpm::testing {

// DDPM_EVAL_REFERENCE_DIR/part/name.
inline std::string reference_path(const std::string& part, const std::string& name = "") {
  return std::string(DDPM_EVAL_REFERENCE_DIR) + "/" + part + (name.empty() ? "" : "/" + name);
}

// A fresh, empty directory reference_path(part, "ours") for the files a test writes.
inline std::string fresh_ours_dir(const std::string& part) {
  const std::string dir = reference_path(part, "ours");
  run_command("rm -rf '" + dir + "'");
  make_dirs(dir);
  return dir;
}

// make_eval_reference.py --check-written: numpy reads every file in part/ours exactly as
// the file of the same name in part/. Returns its exit status.
inline int numpy_check_written(const std::string& part) {
  return run_command(std::string(DDPM_TEST_PYTHON) + " " + DDPM_SOURCE_DIR +
                     "/tests/reference/make_eval_reference.py --check-written '" + reference_path(part) + "'");
}

}  // namespace ddpm::testing
