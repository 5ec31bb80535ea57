// The Inception Score against improved-gan's formula in numpy (logits through a float64
// softmax, and probabilities), and precision/recall against guided-diffusion's
// definitions in numpy (k = 3 radii, squared distances, ≤), exact and as the evaluator's
// float16 DistanceBlock computes them (a numpy port of it), on data that
// make_eval_reference.py wrote.
#define BOOST_TEST_MODULE eval_scores
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "core/common.h"
#include "eval/inception_score.h"
#include "eval/precision_recall.h"
#include "eval_test_util.h"

using namespace ddpm;
using namespace ddpm::eval;
using ddpm::testing::input_error_of;
using ddpm::testing::reference_path;

namespace {

FeatureMatrix scores_input(const std::string& file, const std::string& name) {
  return read_features(NpzReader(reference_path("scores", file)), name);
}

std::vector<double> expected(const std::string& name) {
  return NpzReader(reference_path("scores", "expected.npz")).read(name).to_doubles();
}

double relative(double a, double b) { return std::abs(a - b) / std::abs(b); }

void check_score(const InceptionScore& score, const std::string& name) {
  BOOST_TEST_MESSAGE(name << ": " << score.mean << " ± " << score.std << ", numpy " << expected("is_" + name + "_mean")[0]
                          << " ± " << expected("is_" + name + "_std")[0]);
  BOOST_TEST(relative(score.mean, expected("is_" + name + "_mean")[0]) < 1e-10);
  BOOST_TEST(relative(score.std, expected("is_" + name + "_std")[0]) < 1e-8);
  const std::vector<double> splits = expected("is_" + name + "_splits");
  BOOST_REQUIRE_EQUAL(score.split_scores.size(), splits.size());
  for (size_t i = 0; i < splits.size(); ++i) BOOST_TEST(relative(score.split_scores[i], splits[i]) < 1e-10);
}

}  // namespace

BOOST_AUTO_TEST_CASE(inception_score_of_logits_matches_numpy) {
  // 1003 rows: the ten splits are not all the same size (i·N/10 boundaries).
  const FeatureMatrix logits = scores_input("logits.npz", "logits");
  BOOST_REQUIRE_EQUAL(logits.count, 1003);
  check_score(inception_score_from_logits(logits.rows()), "logits");
}

BOOST_AUTO_TEST_CASE(inception_score_in_parts_matches_numpy) {
  // guided-diffusion's evaluator: parts of a fixed size, the last one shorter.
  const FeatureMatrix logits = scores_input("logits.npz", "logits");
  const InceptionScore score = inception_score_in_parts_of(logits.rows(), 400);
  BOOST_REQUIRE_EQUAL(score.split_scores.size(), 3u);
  check_score(score, "parts");
  // Fewer rows than a part: one part.
  BOOST_TEST(inception_score_in_parts_of(logits.rows()).split_scores.size() == 1u);
}

BOOST_AUTO_TEST_CASE(inception_score_of_probabilities_matches_numpy) {
  const FeatureMatrix p = scores_input("probabilities.npz", "probabilities");
  check_score(inception_score_from_probabilities(p.rows(), 7), "probabilities");
}

BOOST_AUTO_TEST_CASE(inception_score_refuses_what_it_cannot_score) {
  const std::vector<float> two_rows = {0.5f, 0.5f, 0.25f, 0.75f};
  BOOST_TEST(input_error_of([&] { inception_score_from_probabilities({two_rows.data(), 2, 2}, 10); })
                 .find("2 probabilities for 10 split(s)") != std::string::npos);
  const std::vector<float> unnormalised = {0.5f, 0.6f, 0.25f, 0.75f}, negative = {1.5f, -0.5f, 0.25f, 0.75f};
  BOOST_TEST(input_error_of([&] { inception_score_from_probabilities({unnormalised.data(), 2, 2}, 1); })
                 .find("row 0 sums to 1.1") != std::string::npos);
  BOOST_TEST(input_error_of([&] { inception_score_from_probabilities({negative.data(), 2, 2}, 1); })
                 .find("negative") != std::string::npos);
  const std::vector<float> nan_logits = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.0f};
  BOOST_TEST(input_error_of([&] { inception_score_from_logits({nan_logits.data(), 2, 2}, 1); }).find("NaN") !=
             std::string::npos);
  // One sure class per row, the classes spread evenly: the score is the class count.
  const std::vector<float> sure = {30, 0, 0, 0, 30, 0, 0, 0, 30};
  const InceptionScore three = inception_score_from_logits({sure.data(), 3, 3}, 1);
  BOOST_TEST(std::abs(three.mean - 3.0) < 1e-9);
  BOOST_TEST(three.std == 0.0);
}

BOOST_AUTO_TEST_CASE(radii_and_precision_recall_match_numpy) {
  const NpzReader npz(reference_path("scores", "pr.npz"));
  const FeatureMatrix reference = read_features(npz, "reference"), samples = read_features(npz, "samples");
  BOOST_REQUIRE_GT(reference.count, 1024);  // more than one block of rows
  const std::vector<double> radii = manifold_radii(reference.rows(), kManifoldNeighbours, DistancePrecision::kFloat64);
  const std::vector<double> numpy_radii = expected("radii_reference");
  BOOST_REQUIRE_EQUAL(radii.size(), numpy_radii.size());
  double worst = 0;
  for (size_t i = 0; i < radii.size(); ++i) worst = std::max(worst, relative(radii[i], numpy_radii[i]));
  BOOST_TEST_MESSAGE("radii: worst relative difference " << worst);
  BOOST_TEST(worst < 1e-10);
  const PrecisionRecall pr = precision_recall(reference.rows(), samples.rows(), kManifoldNeighbours,
                                              DistancePrecision::kFloat64);
  BOOST_TEST_MESSAGE("precision " << pr.precision << ", recall " << pr.recall);
  BOOST_TEST(pr.precision == expected("precision")[0]);
  BOOST_TEST(pr.recall == expected("recall")[0]);
  // Against itself, every point lies in its own ball.
  const PrecisionRecall self = precision_recall(samples.rows(), samples.rows());
  BOOST_TEST(self.precision == 1.0);
  BOOST_TEST(self.recall == 1.0);
}

BOOST_AUTO_TEST_CASE(float16_distances_flip_points_as_the_evaluator_does) {
  // Inception-like features (squared norms ~900) where the evaluator's float16 distances
  // put some point on the other side of a radius than exact distances do.
  const NpzReader npz(reference_path("scores", "pr16.npz"));
  const FeatureMatrix reference = read_features(npz, "reference"), samples = read_features(npz, "samples");
  const std::vector<double> radii = manifold_radii(reference.rows()), port_radii = expected("pr16_radii");
  BOOST_REQUIRE_EQUAL(radii.size(), port_radii.size());
  int differ = 0;
  for (size_t i = 0; i < radii.size(); ++i) differ += radii[i] != port_radii[i];
  BOOST_TEST(differ == 0, differ << " of " << radii.size() << " float16 radii differ from the port's");
  const PrecisionRecall half = precision_recall(reference.rows(), samples.rows());
  const PrecisionRecall exact =
      precision_recall(reference.rows(), samples.rows(), kManifoldNeighbours, DistancePrecision::kFloat64);
  BOOST_TEST_MESSAGE("float16: precision " << half.precision << ", recall " << half.recall << "; exact: "
                                           << exact.precision << ", " << exact.recall);
  BOOST_TEST(half.precision == expected("pr16_precision")[0]);
  BOOST_TEST(half.recall == expected("pr16_recall")[0]);
  BOOST_TEST(exact.precision == expected("pr16_exact_precision")[0]);
  BOOST_TEST(exact.recall == expected("pr16_exact_recall")[0]);
  BOOST_TEST((half.precision != exact.precision || half.recall != exact.recall));
}

BOOST_AUTO_TEST_CASE(float16_overflow_falls_back_to_float32) {
  const NpzReader npz(reference_path("scores", "pr_overflow.npz"));
  const FeatureMatrix reference = read_features(npz, "reference"), samples = read_features(npz, "samples");
  const PrecisionRecall pr = precision_recall(reference.rows(), samples.rows());
  BOOST_TEST_MESSAGE("precision " << pr.precision << ", recall " << pr.recall);
  BOOST_TEST(pr.precision == expected("pr_overflow_precision")[0]);
  BOOST_TEST(pr.recall == expected("pr_overflow_recall")[0]);
  // Infinite float16 distances would leave every radius infinite: everything inside.
  BOOST_TEST((pr.precision < 1.0 || pr.recall < 1.0));
}

BOOST_AUTO_TEST_CASE(precision_recall_refuses_what_it_cannot_measure) {
  const std::vector<float> three(3 * 2, 1.0f), four(4 * 3, 1.0f);
  BOOST_TEST(input_error_of([&] { manifold_radii({three.data(), 3, 2}); }).find("need at least 4") != std::string::npos);
  BOOST_TEST(input_error_of([&] { precision_recall({four.data(), 4, 3}, {four.data(), 6, 2}); }).find("size 3") !=
             std::string::npos);
  BOOST_TEST(input_error_of([&] { manifold_radii({four.data(), 4, 3}, 0); }).find("k = 0") != std::string::npos);
  BOOST_TEST(input_error_of([&] { parse_distance_precision("half", "--pr-distances"); }).find("--pr-distances") !=
             std::string::npos);
}
