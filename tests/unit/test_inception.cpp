// The evaluation's Inception network (src/eval/inception.h) against an independent
// PyTorch implementation of pytorch-fid's FID Inception (tests/reference/inception_ref.py,
// no torchvision): random weights with calibrated BatchNorm statistics, saved under
// pytorch-fid's key names, converted by tools/convert_inception.py (BatchNorm folded),
// loaded and run on the CPU at batch 2. pool_3, the logits and Mixed_6d.branch1x1 must
// match the float64 reference within 1e-4 (norm-wise), and be far from the outputs of
// the two plausible mistakes: average pools that count the padding, and an average
// pool in the last block. The reference files are generated in the build tree on every
// run (95 MB of weights); a generator or converter failure is a test failure.
#define BOOST_TEST_MODULE inception
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/common.h"
#include "core/h5.h"
#include "core/ops.h"
#include "eval/inception.h"
#include "python_reference.h"

using namespace ddpm;
using namespace ddpm::eval;

namespace {

constexpr double kMatchTol = 1e-4;  // float32 through 94 convolutions against float64
constexpr double kFarTol = 1e-2;    // how far each wrong variant must be
constexpr int64_t kLearnableParameters = 23'850'960;  // before folding: conv, BN weight and bias, fc
constexpr int kConvolutions = 94;
constexpr double kGmacPerImage = 5.71;

const std::string kSource = DDPM_SOURCE_DIR;
const std::string kDir = "inception_ref";  // in the working directory: the build tree

std::string converter_args(const std::string& in, const std::string& out) {
  return kDir + "/" + in + " " + kDir + "/" + out;
}

// The reference files and the converted weights, made once per process.
struct Reference {
  std::string conversion;  // what the converter said
  Reference() {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string generated = test::run_python_script("tests/reference/inception_ref.py", "--out " + kDir);
    conversion = test::run_python_script("tools/convert_inception.py",
                                         converter_args("inception_ref.pth", "inception_weights.h5"));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST_MESSAGE(generated << conversion << "reference generated and converted in " << seconds << " s");
  }
};

const Reference& reference() {
  static const Reference r;
  return r;
}

std::vector<float> read_tensor(const h5::File& f, const std::string& name, const std::vector<int64_t>& shape) {
  const h5::DatasetInfo info = f.info(name);
  BOOST_REQUIRE_MESSAGE(info.shape == shape, name << " has shape " << shape_to_string(info.shape));
  std::vector<float> v(static_cast<size_t>(info.numel()));
  f.read_f32(name, v.data(), info.numel());
  return v;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    d += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    n += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(d / n);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_network_has_pytorch_fids_tensors_parameters_and_macs) {
  const FidInception net;
  int convolutions = 0;
  int64_t folded_bn = 0;  // one bias per BatchNorm channel stands for its weight and bias
  for (const ParamInfo& p : net.layout().params()) {
    convolutions += ends_with(p.name, ".conv.weight");
    if (ends_with(p.name, ".conv.bias")) folded_bn += p.numel;
  }
  BOOST_TEST(convolutions == kConvolutions);
  BOOST_TEST(net.layout().num_parameters() + folded_bn == kLearnableParameters);
  BOOST_TEST(net.layout().at("Mixed_6b.branch7x7_2.conv.weight").shape == (std::vector<int64_t>{128, 128, 1, 7}));
  BOOST_TEST(net.layout().at("Mixed_7c.branch3x3dbl_3b.conv.weight").shape == (std::vector<int64_t>{384, 384, 3, 1}));
  BOOST_TEST(net.layout().at("fc.weight").shape == (std::vector<int64_t>{1008, 2048}));
  const double gmac = net.macs_per_image() / 1e9;
  BOOST_TEST_MESSAGE(net.layout().num_parameters() << " parameters after folding, " << gmac << " GMAC per image");
  BOOST_TEST(std::fabs(gmac - kGmacPerImage) < 0.005);
}

BOOST_AUTO_TEST_CASE(outputs_match_pytorch_and_not_its_wrong_variants) {
  reference();
  const std::unique_ptr<Ops> ops = make_cpu_ops();  // outlives the network's plan
  FidInception net;
  std::vector<float> weights(static_cast<size_t>(net.layout().size()));
  read_inception_weights(kDir + "/inception_weights.h5", net.layout(), weights.data());
  const h5::File ref = h5::File::open_read(kDir + "/inception_ref.h5");
  const int N = 2, S = FidInception::kSpatialSize;
  const std::vector<float> images = read_tensor(ref, "input", {N, 299, 299, 3});

  ParamBuffer params(*ops, net.layout().size());
  params.load(weights.data());
  net.prepare(*ops, N);
  Buffer x(*ops, images), pool3(*ops, N * FidInception::kFeatures), logits(*ops, N * FidInception::kClasses);
  Buffer spatial(*ops, int64_t{N} * S * S * FidInception::kSpatialChannels);
  Pass ps;
  ps.ops = ops.get(), ps.params = params.get(), ps.version = params.version(), ps.N = N;
  double seconds[2];
  for (double& s : seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    net.forward(ps, {pool3.get(), logits.get(), spatial.get()}, x.get());
    ops->synchronize();
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  BOOST_TEST_MESSAGE("forward of batch " << N << ": " << seconds[0] << " s (first, with weight reorders), "
                                         << seconds[1] << " s; activations " << net.activation_floats() * 4e-6
                                         << " MB");

  const std::vector<float> got[] = {pool3.host(), logits.host(), spatial.host()};
  const std::vector<std::vector<int64_t>> shapes = {
      {N, FidInception::kFeatures}, {N, FidInception::kClasses}, {N, S, S, FidInception::kSpatialChannels}};
  const char* names[] = {"pool3", "logits", "spatial"};
  for (int i = 0; i < 3; ++i) {
    const double err = relative_error(got[i], read_tensor(ref, names[i], shapes[i]));
    BOOST_TEST_MESSAGE(names[i] << ": relative error " << err);
    BOOST_TEST(err <= kMatchTol, names[i] << " is off by " << err);
  }
  // Each wrong variant changes pool_3 and the logits; only the padded average pools come
  // before Mixed_6d, so the last block's pool leaves the sFID map as it is.
  for (const std::string variant : {"avg_include_pad", "avg_in_last_block"}) {
    for (int i = 0; i < 3; ++i) {
      if (variant == "avg_in_last_block" && std::string(names[i]) == "spatial") continue;
      const double err = relative_error(got[i], read_tensor(ref, "variants/" + variant + "/" + names[i], shapes[i]));
      BOOST_TEST_MESSAGE(names[i] << " against the variant " << variant << ": " << err);
      BOOST_TEST(err > kFarTol, names[i] << " is as close to the wrong variant " << variant << " (" << err << ")");
    }
  }
}

BOOST_AUTO_TEST_CASE(converter_warns_of_an_unpublished_file_and_refuses_torchvisions) {
  const std::string& said = reference().conversion;
  BOOST_TEST(said.find("sha256 ") != std::string::npos, said);
  BOOST_TEST(said.find("warning: this is not pytorch-fid's published") != std::string::npos, said);
  const test::Command tv = test::run_command(
      test::python_script("tools/convert_inception.py", converter_args("torchvision_like.pth", "refused.h5")));
  BOOST_TEST(tv.status == 2, tv.output);
  BOOST_TEST(tv.output.find("torchvision's ImageNet Inception v3") != std::string::npos, tv.output);
  BOOST_TEST(std::count(tv.output.begin(), tv.output.end(), '\n') == 1, "one line: " << tv.output);
  BOOST_TEST(access((kDir + "/refused.h5").c_str(), F_OK) != 0);  // nothing written
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_inception_weights_is_refused) {
  reference();
  const FidInception net;
  std::vector<float> weights(static_cast<size_t>(net.layout().size()));
  // A U-Net weights file (ddpm's format, no Inception format attribute), and h5py's
  // default file of the reference outputs (no metadata checksums).
  const std::string unet = kSource + "/tests/fuzz/corpus/fuzz_checkpoint/weights.h5";
  for (const std::string& path : {unet, kDir + "/inception_ref.h5"}) {
    try {
      read_inception_weights(path, net.layout(), weights.data());
      BOOST_FAIL(path << " was read as Inception weights");
    } catch (const InputError& e) {
      BOOST_TEST_MESSAGE(e.what());
      BOOST_TEST(std::string(e.what()).rfind(path + ": ", 0) == 0, e.what());
    }
  }
  try {
    read_inception_weights(unet, net.layout(), weights.data());
  } catch (const InputError& e) {
    BOOST_TEST(std::string(e.what()).find("not an Inception weights file") != std::string::npos, e.what());
  }
}
