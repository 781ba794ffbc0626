#include "apps/common/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace app {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, FILE* out, int tty)
    : label_(std::move(label)), total_(total), start_(start), out_(out) {
  tty_ = tty < 0 ? ::isatty(::fileno(out)) == 1 : tty == 1;
  next_mark_ = start + std::max<int64_t>(1, total / 10);
  t0_ = last_ = std::chrono::steady_clock::now();
}

double ProgressBar::since_draw() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_).count();
}

bool ProgressBar::due(int64_t done) const {
  if (tty_) return done == total_ || since_draw() >= 0.25;
  return done >= next_mark_ && done < total_ && since_draw() >= 2.0;
}

std::string ProgressBar::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

void ProgressBar::update(int64_t done, double loss, double acc, double examples_per_sec) {
  last_ = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(last_ - t0_).count();
  double rate = done > start_ ? elapsed / static_cast<double>(done - start_) : NAN;  // seconds per batch
  double eta = rate * static_cast<double>(total_ - done);
  const std::string stats = fmt::format("{}/{}  loss {:.3f}  acc {:.3f}  {:.1f} ex/s  ETA {}", done, total_, loss, acc,
                                        examples_per_sec, format_duration(eta));
  if (tty_) {
    const int width = 24;
    int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    fmt::print(out_, "\r{} [{}{}] {}\033[K", label_, std::string(filled, '#'), std::string(width - filled, '.'), stats);
  } else {
    fmt::print(out_, "{} {}\n", label_, stats);
    while (next_mark_ <= done) next_mark_ += std::max<int64_t>(1, total_ / 10);
  }
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (tty_ && drawn_) {
    fmt::print(out_, "\r\033[K");
    std::fflush(out_);
  }
  drawn_ = false;
}

}  // namespace app
