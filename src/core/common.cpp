#include "core/common.h"

namespace ddpm {

void fail_check(const char* file, int line, const std::string& what) {
  throw Error(cat(file, ":", line, ": ", what));
}

}  // namespace ddpm
