#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <iterator>

#include "apps/common/metrics.h"
#include "apps/common/plot.h"
#include "apps/common/png.h"
#include "apps/common/trainer.h"
#include "engine/json_strict.h"
#include "tests/app/app_test_util.h"

TEST_CASE("png: encode and decode round trip", "[app][plot]") {
  std::vector<uint8_t> rgb(7 * 5 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 13);
  std::vector<uint8_t> png = app::encode_png(7, 5, rgb);
  REQUIRE(png[1] == 'P');
  int w = 0, h = 0;
  REQUIRE(app::decode_png(png, &w, &h) == rgb);
  REQUIRE(w == 7);
  REQUIRE(h == 5);
  png[40] ^= 1;  // inside IDAT: the CRC catches it
  REQUIRE_THROWS_WITH(app::decode_png(png, &w, &h), Catch::Contains("CRC"));
}

TEST_CASE("plot: ticks use 1-2-5 steps", "[app][plot]") {
  REQUIRE(app::nice_ticks(0, 1, 5, false) == std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1});
  std::vector<double> t = app::nice_ticks(1, 10, 8, true);
  REQUIRE(t.front() == 2);
  REQUIRE(t[1] - t[0] == 2);
  REQUIRE(app::nice_ticks(3, 3.5, 5, true).size() <= 1);
}

TEST_CASE("plot: a run's curves are drawn with its colours, in PNG and SVG", "[app][plot]") {
  apptest::TempDir dir;
  std::vector<app::EpochRecord> h;
  for (int e = 1; e <= 5; ++e) {
    app::EpochRecord r;
    r.epoch = e;
    r.train_loss = 1.0 / e;
    r.train_acc = 0.7 + 0.04 * e;
    r.test_acc = 0.68 + 0.03 * e;
    r.val_loss = r.val_acc = NAN;
    h.push_back(r);
  }
  app::plot_run_curves(dir.str(), "resnet20", h);
  std::ifstream f(dir / "curves.png", std::ios::binary);
  std::vector<uint8_t> png((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int w = 0, hgt = 0;
  std::vector<uint8_t> rgb = app::decode_png(png, &w, &hgt);
  REQUIRE(w == 640);
  REQUIRE(hgt == 440);
  REQUIRE(rgb[0] == 255);  // white background
  size_t blue = 0, green = 0, dark = 0;
  for (size_t i = 0; i < rgb.size(); i += 3) {
    blue += rgb[i] == 0x1f && rgb[i + 1] == 0x77 && rgb[i + 2] == 0xb4;
    green += rgb[i] == 0x2c && rgb[i + 1] == 0xa0 && rgb[i + 2] == 0x2c;
    dark += rgb[i] == 0x22 && rgb[i + 1] == 0x22 && rgb[i + 2] == 0x22;
  }
  REQUIRE(blue > 200);   // train loss line
  REQUIRE(green > 100);  // test accuracy line (dash-dot)
  REQUIRE(dark > 300);   // text
  std::ifstream s(dir / "curves.svg");
  std::string svg((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  REQUIRE_THAT(svg, Catch::StartsWith("<svg") && Catch::Contains("train loss") && Catch::Contains("test acc") &&
                        Catch::Contains("stroke=\"#1f77b4\"") && Catch::Contains("stroke-dasharray"));
  REQUIRE_THAT(svg, !Catch::Contains("val acc"));  // no validation split, no validation line
}

TEST_CASE("metrics: csv and jsonl files read back", "[app][plot]") {
  apptest::TempDir dir;
  app::EpochRecord r;
  r.epoch = 3;
  r.train_loss = 0.215;
  r.train_acc = 0.921;
  r.val_loss = r.val_acc = NAN;
  r.test_loss = 0.3;
  r.test_acc = 0.905;
  r.lr = 0.05;
  r.examples_per_sec = 4812.3;
  app::write_metrics_files(dir.str(), {r});
  auto back = app::read_metrics_csv(dir / "metrics.csv");
  REQUIRE(back.size() == 1);
  REQUIRE(back[0].epoch == 3);
  REQUIRE(back[0].train_acc == 0.921);
  REQUIRE(std::isnan(back[0].val_acc));
  REQUIRE(back[0].examples_per_sec == 4812.3);
  std::ifstream j(dir / "metrics.jsonl");
  std::string line;
  std::getline(j, line);
  app::EpochRecord from_json = app::record_from_json(engine::parse_json(line));
  REQUIRE(from_json.test_acc == 0.905);
  REQUIRE(std::isnan(from_json.val_loss));
  REQUIRE_THROWS_WITH(app::read_metrics_csv(dir / "nope.csv"), Catch::Contains("cannot open"));
}
