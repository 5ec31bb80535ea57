// The Inception's input pipeline (src/eval/inception_input.h) against the references of
// tests/reference/inception_input_ref.py, generated in the build tree on every run: TF1's
// bilinear formula in float32 numpy (tf), torch's F.interpolate (torch) and python3-pil's
// bicubic resize (pil-bicubic), on random uint8 images scaled up (32x32), down
// (384x512), one axis each way (a grey 400x200) and not at all (299x299). Errors are
// the largest absolute difference in pixel units (the [0, 255] scale).
#define BOOST_TEST_MODULE inception_input
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/common.h"
#include "core/h5.h"
#include "eval/inception_input.h"
#include "python_reference.h"

using namespace ddpm;
using namespace ddpm::eval;

namespace {

const std::string kFile = "inception_input_ref.h5";  // in the working directory: the build tree

const std::string& generated() {
  static const std::string said = test::run_python_script("tests/reference/inception_input_ref.py", "--out " + kFile);
  return said;
}

struct Mode {
  InceptionResize mode;
  double pixels_per_unit;  // the output scale's size of one [0, 255] step
  double tolerance;        // in pixel units
};

}  // namespace

BOOST_AUTO_TEST_CASE(every_mode_matches_its_reference_on_every_image) {
  BOOST_TEST_MESSAGE(generated());
  const h5::File f = h5::File::open_read(kFile);
  const Mode modes[] = {{InceptionResize::kTf, 128.0, 1e-4},
                        {InceptionResize::kTorch, 127.5, 1e-4},
                        {InceptionResize::kPilBicubic, 127.5, 1e-3}};
  const int S = kInceptionInputSize;
  const std::vector<std::string> images = f.list("images");
  BOOST_REQUIRE(images.size() == 4u);
  for (const std::string& name : images) {
    const h5::DatasetInfo info = f.info("images/" + name);
    BOOST_REQUIRE(info.shape.size() == 3u);
    const int H = static_cast<int>(info.shape[0]), W = static_cast<int>(info.shape[1]);
    const int C = static_cast<int>(info.shape[2]);
    std::vector<uint8_t> image(static_cast<size_t>(info.numel()));
    f.read_u8("images/" + name, image.data(), info.numel());
    for (const Mode& m : modes) {
      const std::string ref_name = cat(inception_resize_name(m.mode), "/", name);
      std::vector<float> want(static_cast<size_t>(S) * S * 3), got(want.size());
      BOOST_REQUIRE(f.info(ref_name).shape == (std::vector<int64_t>{S, S, 3}));
      f.read_f32(ref_name, want.data(), static_cast<int64_t>(want.size()));
      inception_input(got.data(), image.data(), H, W, C, m.mode);
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
      worst *= m.pixels_per_unit;
      BOOST_TEST_MESSAGE(ref_name << " (" << H << "x" << W << "x" << C << "): largest difference " << worst
                                  << " pixel units");
      BOOST_TEST(worst <= m.tolerance, ref_name << " is off by " << worst << " pixel units");
    }
  }
}

BOOST_AUTO_TEST_CASE(modes_are_named_as_the_config_writes_them) {
  for (InceptionResize m : {InceptionResize::kTf, InceptionResize::kTorch, InceptionResize::kPilBicubic}) {
    BOOST_TEST(static_cast<int>(parse_inception_resize(inception_resize_name(m), "eval.resize")) ==
               static_cast<int>(m));
  }
  BOOST_CHECK_THROW(parse_inception_resize("bilinear", "eval.resize"), InputError);
}
