#include <catch2/catch.hpp>
#include <filesystem>

#include "apps/common/fmnist.h"
#include "engine/error.h"
#include "tests/app/app_test_util.h"

using apptest::idx_images;
using apptest::idx_labels;
using apptest::TempDir;
using apptest::write_bytes;

namespace {
std::vector<uint8_t> pixels(size_t n) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 37 % 251);
  return p;
}
}  // namespace

TEST_CASE("idx: valid image and label files, raw and gzipped", "[app][idx]") {
  for (bool gz : {false, true}) {
    TempDir dir;
    std::string im = dir / (gz ? "im.gz" : "im"), lb = dir / (gz ? "lb.gz" : "lb");
    write_bytes(im, idx_images(3, 4, 5, pixels(60)), gz);
    write_bytes(lb, idx_labels(3, {9, 0, 4}), gz);
    app::LabeledImages d = app::load_idx_pair(im, lb);
    REQUIRE(d.count == 3);
    REQUIRE(d.rows == 4);
    REQUIRE(d.cols == 5);
    REQUIRE(d.pixels == pixels(60));
    REQUIRE(d.labels == std::vector<int32_t>{9, 0, 4});
    REQUIRE(d.head(2).count == 2);
    REQUIRE(d.select({2, 0}).labels == std::vector<int32_t>{4, 9});
  }
}

TEST_CASE("idx: malformed files are rejected naming the file and the problem", "[app][idx]") {
  TempDir dir;
  const std::string im = dir / "images", lb = dir / "labels";
  write_bytes(lb, idx_labels(3, {1, 2, 3}), false);

  SECTION("truncated image data") {
    write_bytes(im, idx_images(3, 4, 5, pixels(59)), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains(im) && Catch::Contains("truncated"));
  }
  SECTION("truncated header") {
    write_bytes(im, {0, 0, 8, 3, 0, 0}, false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains(im) && Catch::Contains("too short"));
  }
  SECTION("wrong magic: a label file given as images") {
    write_bytes(im, idx_labels(3, {1, 2, 3}), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb),
                        Catch::Contains("wrong magic number 0x00000801") && Catch::Contains("looks like a label file"));
  }
  SECTION("wrong magic in the label file") {
    write_bytes(im, idx_images(3, 4, 5, pixels(60)), false);
    write_bytes(lb, idx_labels(3, {1, 2, 3}, 0x00000901), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains(lb) && Catch::Contains("wrong magic"));
  }
  SECTION("header count larger than the data") {
    write_bytes(im, idx_images(4, 4, 5, pixels(60)), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains("announces 4 images"));
  }
  SECTION("header count smaller than the data") {
    write_bytes(im, idx_images(2, 4, 5, pixels(60)), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains("20 unexpected bytes"));
  }
  SECTION("image and label counts differ") {
    write_bytes(im, idx_images(2, 4, 5, pixels(40)), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains("count mismatch") && Catch::Contains("2 images") &&
                                                        Catch::Contains("3 labels"));
  }
  SECTION("label count larger than the data") {
    write_bytes(im, idx_images(3, 4, 5, pixels(60)), false);
    write_bytes(lb, idx_labels(5, {1, 2, 3}), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains(lb) && Catch::Contains("truncated"));
  }
  SECTION("label out of range") {
    write_bytes(im, idx_images(3, 4, 5, pixels(60)), false);
    write_bytes(lb, idx_labels(3, {1, 2, 12}), false);
    REQUIRE_THROWS_WITH(app::load_idx_pair(im, lb), Catch::Contains("label 12 at index 2 is out of range [0, 10)"));
  }
  SECTION("truncated gzip stream") {
    const std::string gz = dir / "images.gz";
    write_bytes(gz, idx_images(3, 4, 5, pixels(60)), true);
    std::filesystem::resize_file(gz, std::filesystem::file_size(gz) - 12);
    REQUIRE_THROWS_WITH(app::load_idx_pair(gz, lb), Catch::Contains(gz) && Catch::Contains("gzip"));
  }
  SECTION("missing file") {
    REQUIRE_THROWS_WITH(app::load_idx_pair(dir / "nope", lb),
                        Catch::Contains("nope") && Catch::Contains("cannot open"));
  }
}

TEST_CASE("idx: Fashion-MNIST folder lookup prefers .gz, falls back to raw, explains what is missing", "[app][idx]") {
  TempDir dir;
  std::vector<uint8_t> px(2 * 28 * 28, 7);
  write_bytes(dir / "train-images-idx3-ubyte.gz", idx_images(2, 28, 28, px), true);
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(2, {3, 4}), false);
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(2, 28, 28, px), false);
  REQUIRE_THROWS_WITH(app::load_fashion_mnist(dir.str()),
                      Catch::Contains("t10k-labels-idx1-ubyte") && Catch::Contains("dataset-fashion-mnist"));
  write_bytes(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(2, {5, 9}), true);
  app::FashionMnist d = app::load_fashion_mnist(dir.str());
  REQUIRE(d.train.labels == std::vector<int32_t>{3, 4});
  REQUIRE(d.test.labels == std::vector<int32_t>{5, 9});
  REQUIRE_THROWS_WITH(app::load_fashion_mnist(dir / "absent"), Catch::Contains("does not exist"));
}

TEST_CASE("idx: the installed Fashion-MNIST has 60000 + 10000 balanced 28x28 examples", "[app][idx][dataset]") {
  if (!std::filesystem::is_directory(app::kDefaultDataDir)) {
    WARN("SKIPPED: " << app::kDefaultDataDir << " is missing (apt-get install dataset-fashion-mnist)");
    return;
  }
  app::FashionMnist d = app::load_fashion_mnist();
  REQUIRE(d.train.count == 60000);
  REQUIRE(d.test.count == 10000);
  REQUIRE(d.train.rows == 28);
  std::vector<int> per_class(10, 0);
  for (int32_t y : d.test.labels) ++per_class[y];
  REQUIRE(per_class == std::vector<int>(10, 1000));
  REQUIRE(app::fashion_class_names().size() == 10);
  REQUIRE(app::fashion_class_names()[9] == "Ankle boot");
}
