// Feature statistics against numpy's mean and cov(rowvar=False), and the Fréchet
// distance against pytorch-fid's formula (scipy.linalg.sqrtm of sigma1·sigma2), on random
// features that make_eval_reference.py wrote: full rank (N = 5000, D = 2048), rank
// deficient (N = 1000 < D = 2048) and small (D = 64, with pytorch-fid stats files).
#define BOOST_TEST_MODULE eval_frechet
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cmath>
#include <limits>

#include "core/common.h"
#include "eval/frechet.h"
#include "eval_test_util.h"

using namespace ddpm;
using namespace ddpm::eval;
using ddpm::testing::input_error_of;
using ddpm::testing::reference_path;

namespace {

constexpr double kFidTolerance = 1e-6;  // relative, against the sqrtm formula

FeatureMatrix features(const std::string& file) {
  return read_features(NpzReader(reference_path("fid", file)), "features");
}

double expected_fid(const std::string& name) {
  return NpzReader(reference_path("fid", "expected.npz")).read(name).to_doubles().at(0);
}

// The statistics of a file's features, streamed in batches of `batch` rows.
FeatureStats streamed_stats(const FeatureMatrix& f, int64_t batch) {
  FeatureStatsAccumulator acc(f.dim);
  for (int64_t begin = 0; begin < f.count; begin += batch) acc.add(f.rows().slice(begin, std::min(f.count, begin + batch)));
  BOOST_TEST(acc.count() == f.count);
  return acc.stats();
}

// max |a − b| / max |b|.
double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_against_pytorch_fid(const std::string& name) {
  const auto start = std::chrono::steady_clock::now();
  const FeatureStats a = streamed_stats(features(name + "_a.npz"), 500);
  const FeatureStats b = streamed_stats(features(name + "_b.npz"), 777);
  const double stats_seconds = seconds_since(start);
  const double fid = frechet_distance(a, b), expected = expected_fid(name);
  const double error = std::abs(fid - expected) / expected;
  BOOST_TEST_MESSAGE(name << ": FID " << fid << ", pytorch-fid formula " << expected << ", relative error " << error
                          << " (statistics " << stats_seconds << " s, distance " << seconds_since(start) - stats_seconds
                          << " s)");
  BOOST_TEST(std::isfinite(fid));
  BOOST_TEST(error < kFidTolerance);
}

}  // namespace

BOOST_AUTO_TEST_CASE(statistics_match_numpy_in_any_batching) {
  const FeatureMatrix f = features("small_a.npz");
  const FeatureStats numpy = read_fid_stats(reference_path("fid", "small_stats_a.npz"));
  BOOST_REQUIRE_EQUAL(numpy.dim, 64);
  for (const int64_t batch : {int64_t{1}, int64_t{7}, int64_t{64}, f.count}) {
    BOOST_TEST_CONTEXT("batches of " << batch) {
      const FeatureStats s = streamed_stats(f, batch);
      BOOST_TEST(relative_difference(s.mu, numpy.mu) < 1e-12);
      BOOST_TEST(relative_difference(s.sigma, numpy.sigma) < 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE(small_matches_pytorch_fid_from_features_and_from_stats_files) {
  check_against_pytorch_fid("small");
  // pytorch-fid's stats files (b's mu is float32, as pytorch-fid's own mean of float32
  // activations is): the same distance.
  const double from_files = frechet_distance(read_fid_stats(reference_path("fid", "small_stats_a.npz")),
                                             read_fid_stats(reference_path("fid", "small_stats_b.npz")));
  BOOST_TEST(std::abs(from_files - expected_fid("small")) / expected_fid("small") < kFidTolerance);
}

BOOST_AUTO_TEST_CASE(full_rank_matches_pytorch_fid) { check_against_pytorch_fid("full_rank"); }

BOOST_AUTO_TEST_CASE(rank_deficient_is_finite_and_matches_pytorch_fid) { check_against_pytorch_fid("rank_deficient"); }

BOOST_AUTO_TEST_CASE(a_distance_is_symmetric_and_zero_to_itself) {
  const FeatureStats a = feature_stats(features("small_a.npz").rows());
  const FeatureStats b = feature_stats(features("small_b.npz").rows());
  const double ab = frechet_distance(a, b), ba = frechet_distance(b, a), aa = frechet_distance(a, a);
  BOOST_TEST(std::abs(ab - ba) / ab < 1e-10);
  double trace = 0;
  for (int64_t i = 0; i < a.dim; ++i) trace += a.sigma[static_cast<size_t>(i * a.dim + i)];
  BOOST_TEST(std::abs(aa) < 1e-10 * trace);
}

BOOST_AUTO_TEST_CASE(stats_files_round_trip_through_numpy) {
  const std::string ours = ddpm::testing::fresh_ours_dir("fid");
  const FeatureStats s = read_fid_stats(reference_path("fid", "small_stats_a.npz"));
  write_fid_stats(ours + "/small_stats_a.npz", s);
  BOOST_TEST(ddpm::testing::numpy_check_written("fid") == 0);
  const FeatureStats back = read_fid_stats(ours + "/small_stats_a.npz");
  BOOST_TEST(back.mu == s.mu, boost::test_tools::per_element());
  BOOST_TEST(back.sigma == s.sigma, boost::test_tools::per_element());
  BOOST_TEST(input_error_of([&] { write_fid_stats(ours + "/small_stats_a.npz", s); }).find("exists") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(provenance_round_trips_and_is_checked) {
  const FeatureStats s = read_fid_stats(reference_path("fid", "small_stats_provenance.npz"));
  BOOST_TEST(s.provenance.resize == "torch");
  std::string ab;
  for (int i = 0; i < 32; ++i) ab += "ab";
  BOOST_TEST(s.provenance.weights_sha256 == ab);
  BOOST_TEST(s.provenance.images == 300);
  // Written back, numpy reads every array as it wrote them (the strings as '<U5', '<U64').
  const std::string ours = ddpm::testing::fresh_ours_dir("fid");
  write_fid_stats(ours + "/small_stats_provenance.npz", s);
  BOOST_TEST(ddpm::testing::numpy_check_written("fid") == 0);

  StatsProvenance tf = s.provenance;
  tf.resize = "tf";
  const std::string mismatch = input_error_of([&] { check_provenance(s.provenance, tf, "ref.npz"); });
  BOOST_TEST_MESSAGE(mismatch);
  BOOST_TEST(mismatch.find("ref.npz") != std::string::npos);
  BOOST_TEST(mismatch.find("resize torch") != std::string::npos);
  BOOST_TEST(mismatch.find("resize tf") != std::string::npos);
  StatsProvenance other_weights = s.provenance;
  other_weights.weights_sha256 = std::string(64, 'c');
  BOOST_TEST(input_error_of([&] { check_provenance(s.provenance, other_weights, "ref.npz"); }).find("cccc") !=
             std::string::npos);
  BOOST_TEST(check_provenance(s.provenance, s.provenance, "ref.npz").empty());
  // pytorch-fid's own files have none: accepted, with a note of what is assumed.
  const FeatureStats plain = read_fid_stats(reference_path("fid", "small_stats_a.npz"));
  BOOST_TEST(!plain.provenance.known());
  const std::string note = check_provenance(plain.provenance, tf, "plain.npz");
  BOOST_TEST(note.find("without provenance") != std::string::npos);
  BOOST_TEST(note.find("resize tf") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_statistics_are_input_errors) {
  const FeatureStats a = feature_stats(features("small_a.npz").rows());
  FeatureStats other = a;
  other.dim = 3;
  other.mu.resize(3);
  other.sigma.resize(9);
  BOOST_TEST(input_error_of([&] { frechet_distance(a, other); }).find("dimensions 64 and 3") != std::string::npos);
  FeatureStats nan = a;
  nan.sigma[5] = std::numeric_limits<double>::quiet_NaN();
  BOOST_TEST(input_error_of([&] { frechet_distance(a, nan); }).find("NaN") != std::string::npos);

  const std::vector<float> one_row(64, 1.0f), bad_row = {1.0f, std::numeric_limits<float>::infinity()};
  BOOST_TEST(input_error_of([&] { feature_stats({one_row.data(), 1, 64}); }).find("at least 2") != std::string::npos);
  BOOST_TEST(input_error_of([&] { feature_stats({bad_row.data(), 1, 2}); }).find("NaN or infinity") != std::string::npos);
  FeatureStatsAccumulator acc(64);
  BOOST_TEST(input_error_of([&] { acc.add({bad_row.data(), 1, 2}); }).find("dimension 2") != std::string::npos);

  // A file without sigma, or with one of the wrong shape, names the file.
  const ddpm::testing::TempDir tmp;
  const std::vector<double> mu(4, 0.0), sigma(6, 0.0);
  write_npz(tmp / "no_sigma.npz", {{"mu", NpyView::of(mu, {4})}});
  BOOST_TEST(input_error_of([&] { read_fid_stats(tmp / "no_sigma.npz"); }).find("has no array 'sigma'") != std::string::npos);
  write_npz(tmp / "wrong.npz", {{"mu", NpyView::of(mu, {4})}, {"sigma", NpyView::of(sigma, {2, 3})}});
  BOOST_TEST(input_error_of([&] { read_fid_stats(tmp / "wrong.npz"); }) ==
             tmp / "wrong.npz" + ": sigma is [2, 3] for mu of [4] (expected [D, D] for mu of [D], D >= 1)");
}
