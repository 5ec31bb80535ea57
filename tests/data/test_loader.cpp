// The loader: the global stream for world sizes 1, 2 and 4, flips, resume from a cursor,
// and prefetch. A batch carries only pixels: the tests tell which image (and whether
// mirrored) each example is by comparing with every image of the synthetic dataset.
#define BOOST_TEST_MODULE data_loader
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>
#include <thread>

#include "data/loader.h"
#include "data/stream.h"
#include "fixtures.h"

using namespace ddpm;
using namespace ddpm::data;
using namespace ddpm::testing;

namespace {

constexpr uint64_t kSeed = 1234;
const ImageShape kShape{4, 5, 3};

LoaderOptions options(const std::string& dir, int global_batch, int rank, int world, int prefetch = 2) {
  LoaderOptions o;
  o.path = dir;
  o.global_batch = global_batch;
  o.rank = rank;
  o.world_size = world;
  o.seed = kSeed;
  o.prefetch_batches = prefetch;
  return o;
}

std::vector<Batch> take(const LoaderOptions& o, int n) {
  Loader loader(o);
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(loader.next());
  return out;
}

// The global batches as W ranks see them, concatenated in rank order: [batch][rank].
std::vector<std::vector<Batch>> take_all_ranks(const std::string& dir, int global_batch, int world, int n,
                                               Cursor start = {}) {
  std::vector<std::vector<Batch>> by_batch(static_cast<size_t>(n));
  for (int r = 0; r < world; ++r) {
    LoaderOptions o = options(dir, global_batch, r, world);
    o.start = start;
    const std::vector<Batch> mine = take(o, n);
    for (int b = 0; b < n; ++b) by_batch[static_cast<size_t>(b)].push_back(mine[static_cast<size_t>(b)]);
  }
  return by_batch;
}

// What an example shows: the dataset image and whether it was mirrored.
struct Example {
  int64_t image = -1;
  bool flipped = false;
  bool operator==(const Example& o) const { return image == o.image && flipped == o.flipped; }
};

// Image i of write_synthetic_dataset is pattern_image(seed = i): every image and its
// mirror differ from all others, so the pixels of an example name it.
class ExampleIdentifier {
 public:
  explicit ExampleIdentifier(int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      Image im = pattern_image(kShape.height, kShape.width, kShape.channels, static_cast<uint32_t>(i));
      by_pixels_[im.pixels] = Example{i, false};
      flip_horizontal(im.pixels.data(), kShape.height, kShape.width, kShape.channels);
      by_pixels_[im.pixels] = Example{i, true};
    }
    BOOST_REQUIRE(static_cast<int64_t>(by_pixels_.size()) == 2 * count);
  }
  // The examples of one rank's batch; image -1 where the pixels are no dataset image.
  std::vector<Example> identify(const Batch& b) const {
    std::vector<Example> out;
    const auto bytes = static_cast<size_t>(kShape.bytes());
    BOOST_REQUIRE(b.pixels.size() == bytes * static_cast<size_t>(b.n));
    for (int k = 0; k < b.n; ++k) {
      const auto begin = b.pixels.begin() + static_cast<std::ptrdiff_t>(k * bytes);
      const auto it = by_pixels_.find(std::vector<uint8_t>(begin, begin + static_cast<std::ptrdiff_t>(bytes)));
      out.push_back(it == by_pixels_.end() ? Example{} : it->second);
    }
    return out;
  }
  // The examples of a global batch, in rank order.
  std::vector<Example> identify(const std::vector<Batch>& ranks) const {
    std::vector<Example> all;
    for (const Batch& b : ranks) {
      const std::vector<Example> mine = identify(b);
      all.insert(all.end(), mine.begin(), mine.end());
    }
    return all;
  }

 private:
  std::map<std::vector<uint8_t>, Example> by_pixels_;
};

// The example the stream puts at position s (epoch s / D): the epoch's permutation, and
// a flip when the stream says so.
Example stream_example(int64_t s, int64_t D, bool random_flip = true) {
  const int64_t epoch = s / D, position = s % D;
  return Example{epoch_permutation(kSeed, epoch, D)[static_cast<size_t>(position)],
                 random_flip && flip_at(kSeed, epoch, position)};
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.n == b.n && a.pixels == b.pixels && a.first_global_example == b.first_global_example && a.next == b.next;
}

}  // namespace

BOOST_AUTO_TEST_CASE(permutation_is_a_keyed_shuffle) {
  const std::vector<uint32_t> p = epoch_permutation(kSeed, 0, 1000);
  std::vector<uint32_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint32_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0u);
  BOOST_TEST((sorted == identity));
  BOOST_TEST((p != identity));
  BOOST_TEST((p == epoch_permutation(kSeed, 0, 1000)));
  BOOST_TEST((p != epoch_permutation(kSeed, 1, 1000)));
  BOOST_TEST((p != epoch_permutation(kSeed + 1, 0, 1000)));
  // Uniform: over 3000 epochs each of 5 images comes first about 600 times.
  std::vector<int> first(5, 0);
  for (int e = 0; e < 3000; ++e) ++first[epoch_permutation(kSeed, e, 5)[0]];
  for (int c : first) BOOST_TEST((c > 480 && c < 720), "count " << c);
  int flips = 0;
  for (int p = 0; p < 10000; ++p) flips += flip_at(kSeed, 3, p) ? 1 : 0;
  BOOST_TEST((flips > 4700 && flips < 5300), "flips " << flips);
}

BOOST_AUTO_TEST_CASE(world_sizes_1_2_4_see_the_same_global_batches) {
  TempDir dir;
  const int64_t D = 37;
  write_synthetic_dataset(dir / "ds", D, kShape, 3);
  const ExampleIdentifier identifier(D);
  const int B = 8, n = 15;  // 120 positions: three epochs and a part
  const auto reference = take_all_ranks(dir / "ds", B, 1, n);
  for (int world : {1, 2, 4}) {
    const auto batches = world == 1 ? reference : take_all_ranks(dir / "ds", B, world, n);
    std::vector<int64_t> image_at(static_cast<size_t>(n * B), -1);  // by stream position
    for (int b = 0; b < n; ++b) {
      const std::vector<Batch>& ranks = batches[static_cast<size_t>(b)];
      // The rank slices tile the global batch, in rank order, with no overlap.
      int64_t tiled = 0;
      for (int r = 0; r < world; ++r) {
        const Batch& batch = ranks[static_cast<size_t>(r)];
        BOOST_TEST(batch.n == B / world);
        BOOST_TEST(batch.first_global_example == r * B / world);
        BOOST_TEST(batch.first_global_example == tiled);
        tiled += batch.n;
        BOOST_TEST((batch.next == Cursor{(b + 1) * B / D, (b + 1) * B % D}));
      }
      BOOST_TEST(tiled == B);
      // Global example j is stream position b B + j: its permuted image, mirrored exactly
      // when the stream says so (the pixels are that image's, bit for bit).
      const std::vector<Example> seen = identifier.identify(ranks);
      BOOST_REQUIRE(static_cast<int>(seen.size()) == B);
      for (int j = 0; j < B; ++j) {
        const int64_t s = int64_t{b} * B + j;
        BOOST_TEST((seen[static_cast<size_t>(j)] == stream_example(s, D)), "world " << world << " position " << s);
        image_at[static_cast<size_t>(s)] = seen[static_cast<size_t>(j)].image;
      }
      BOOST_TEST((seen == identifier.identify(reference[static_cast<size_t>(b)])), "world " << world);
    }
    // Every image exactly once in each complete epoch.
    for (int64_t e = 0; e < n * B / D; ++e) {
      std::vector<int64_t> seen(image_at.begin() + e * D, image_at.begin() + (e + 1) * D);
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> all(static_cast<size_t>(D));
      std::iota(all.begin(), all.end(), 0);
      BOOST_TEST((seen == all), "world " << world << " epoch " << e);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_global_batch_larger_than_the_dataset_spans_epochs) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 5, kShape, 2);
  const std::vector<Batch> batches = take(options(dir / "ds", 12, 0, 1), 5);  // 60 positions, 12 epochs
  const ExampleIdentifier identifier(5);
  std::vector<int64_t> images;
  for (const Batch& b : batches) {
    for (const Example& e : identifier.identify(b)) images.push_back(e.image);
  }
  BOOST_REQUIRE(images.size() == 60u);
  for (size_t e = 0; e < 12; ++e) {
    std::vector<int64_t> epoch(images.begin() + 5 * e, images.begin() + 5 * (e + 1));
    std::sort(epoch.begin(), epoch.end());
    BOOST_TEST((epoch == std::vector<int64_t>{0, 1, 2, 3, 4}));
  }
  BOOST_TEST((batches[0].next == Cursor{2, 2}));
}

BOOST_AUTO_TEST_CASE(resume_from_a_cursor_continues_the_same_stream) {
  TempDir dir;
  const int64_t D = 37;
  write_synthetic_dataset(dir / "ds", D, kShape, 4);
  const int B = 6;
  const auto uninterrupted = take_all_ranks(dir / "ds", B, 2, 20);
  // The run stops after batch 7 (mid-epoch 1) and resumes from its saved cursor.
  const Cursor saved = uninterrupted[7][0].next;
  BOOST_TEST((saved == Cursor{48 / D, 48 % D}));
  const auto resumed = take_all_ranks(dir / "ds", B, 2, 12, saved);
  for (int b = 0; b < 12; ++b) {
    for (int r = 0; r < 2; ++r) {
      BOOST_TEST(same_batch(resumed[static_cast<size_t>(b)][static_cast<size_t>(r)],
                            uninterrupted[static_cast<size_t>(b + 8)][static_cast<size_t>(r)]),
                 "batch " << b << " rank " << r);
    }
  }
  // ... also on another number of ranks with the same global batch.
  const ExampleIdentifier identifier(D);
  const auto on_three = take_all_ranks(dir / "ds", B, 3, 12, saved);
  for (int b = 0; b < 12; ++b) {
    const std::vector<Example> seen = identifier.identify(on_three[static_cast<size_t>(b)]);
    BOOST_TEST((seen == identifier.identify(uninterrupted[static_cast<size_t>(b + 8)])));
    for (int j = 0; j < B; ++j) BOOST_TEST((seen[static_cast<size_t>(j)] == stream_example(48 + b * B + j, D)));
  }
  // The first batch after the resume starts at the saved cursor, and its `next` is the
  // cursor to save after that step.
  LoaderOptions o = options(dir / "ds", B, 1, 2);
  o.start = saved;
  Loader loader(o);
  const Batch first = loader.next();
  BOOST_TEST((first.next == Cursor{54 / D, 54 % D}));
  const std::vector<Example> seen = identifier.identify(first);
  for (int k = 0; k < first.n; ++k) {
    BOOST_TEST((seen[static_cast<size_t>(k)] == stream_example(48 + first.first_global_example + k, D)));
  }
}

BOOST_AUTO_TEST_CASE(prefetch_depth_and_open_shard_limit_do_not_change_the_stream) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 50, kShape, 5);
  const std::vector<Batch> synchronous = take(options(dir / "ds", 10, 1, 2, 0), 12);
  for (int prefetch : {1, 4}) {
    const std::vector<Batch> prefetched = take(options(dir / "ds", 10, 1, 2, prefetch), 12);
    for (size_t b = 0; b < 12; ++b) BOOST_TEST(same_batch(prefetched[b], synchronous[b]), "prefetch " << prefetch);
  }
  LoaderOptions one_open = options(dir / "ds", 10, 1, 2);
  one_open.max_open_shards = 1;  // every shard switch closes and re-validates
  const std::vector<Batch> evicting = take(one_open, 12);
  for (size_t b = 0; b < 12; ++b) BOOST_TEST(same_batch(evicting[b], synchronous[b]));
  LoaderOptions no_flip = options(dir / "ds", 10, 0, 1);
  no_flip.random_flip = false;
  const ExampleIdentifier identifier(50);
  int64_t position = 0;
  for (const Batch& b : take(no_flip, 3)) {
    for (const Example& e : identifier.identify(b)) {
      BOOST_TEST(!e.flipped);
      BOOST_TEST((e == stream_example(position++, 50, /*random_flip=*/false)));
    }
  }
}

BOOST_AUTO_TEST_CASE(destroying_a_loader_with_a_full_queue_returns) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 20, kShape, 1);
  const auto start = std::chrono::steady_clock::now();
  {
    Loader loader(options(dir / "ds", 4, 0, 1, 2));
    loader.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the producer blocks on a full queue
  }
  BOOST_TEST(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5.0);
}

BOOST_AUTO_TEST_CASE(bad_options_and_cursors_are_input_errors) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 20, kShape, 2);
  BOOST_TEST(input_error_of([&] { Loader l(options(dir / "ds", 6, 0, 4)); }).find("not divisible by the world size 4") !=
             std::string::npos);
  BOOST_TEST(input_error_of([&] { Loader l(options(dir / "ds", 8, 4, 4)); }).find("rank 4") != std::string::npos);
  BOOST_TEST(input_error_of([&] { Loader l(options(dir / "ds", 0, 0, 1)); }) != "");
  LoaderOptions o = options(dir / "ds", 8, 0, 1);
  o.start = Cursor{0, 20};
  BOOST_TEST(input_error_of([&] { Loader l(o); }).find("outside this dataset of 20 images") != std::string::npos);
  o.start = Cursor{-1, 0};
  BOOST_TEST(input_error_of([&] { Loader l(o); }) != "");
  BOOST_TEST(input_error_of([&] { Loader l(options(dir / "nothing", 8, 0, 1)); }).find("nothing") != std::string::npos);
}
