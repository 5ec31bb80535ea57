// What core/ops.h defines outside the backends: the checks every backend shares.
#include "core/ops.h"

#include "core/common.h"

namespace ddpm {

void GroupNormSpec::check() const {
  DDPM_CHECK(G > 0 && C % G == 0, "GroupNorm: ", C, " channels in ", G, " groups");
}

}  // namespace ddpm
