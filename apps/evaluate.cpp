// evaluate: test-set accuracy of a checkpoint written by train_fmnist (or any safetensors file with the model's
// torchvision names, given --model and the preprocessing).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <memory>

#include "apps/common/cli.h"
#include "apps/common/config.h"
#include "apps/common/data.h"
#include "apps/common/fmnist.h"
#include "apps/common/omp_env.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/optim/ema.h"
#include "models/registry.h"

int main(int argc, char** argv) {
  app::relaunch_with_passive_openmp(argv);
  std::string path, model_name, device_spec = "auto", data_dir = app::kDefaultDataDir;
  int64_t batch_size = 256, limit_test = 0, resize = 0, threads = 0;
  CLI::App cli{
      "Loads CKPT (a .safetensors checkpoint) and prints its Fashion-MNIST test loss, accuracy and\n"
      "per-class accuracy. The model and preprocessing come from the checkpoint's metadata when\n"
      "train_fmnist wrote it; --model, --resize and --normalize override or supply them.",
      "evaluate"};
  app::configure_cli(cli, "evaluate CKPT [options]");
  cli.add_option("CKPT", path, "the checkpoint");
  app::add_option(cli, "model", "NAME", "Model name (default: the checkpoint's).",
                  [&](const std::string& v) { model_name = app::parse_choice(v, "model", models::names()); });
  app::add_option(cli, "resize", "N", "Image side (default: the checkpoint's, else 96).",
                  [&](const std::string& v) { resize = app::parse_int(v, "resize", 8, 512); });
  app::add_option(cli, "normalize", "", "Normalise inputs (default: as the checkpoint was trained).",
                  [](const std::string&) {});
  app::add_option(cli, "device", "DEV", "auto, cpu, cuda or cuda:N (default auto).", [&](const std::string& v) {
    if (v != "auto") engine::Device::parse(v);
    device_spec = v;
  });
  app::add_option(cli, "data", "DIR", "Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist).",
                  [&](const std::string& v) { data_dir = v; });
  app::add_option(cli, "batch-size", "N", "Examples per forward pass (default 256).",
                  [&](const std::string& v) { batch_size = app::parse_int(v, "batch-size", 1, 65536); });
  app::add_option(cli, "limit-test", "N", "Evaluate only the first N test images (default 0: all).",
                  [&](const std::string& v) { limit_test = app::parse_int(v, "limit-test", 0, INT64_MAX); });
  app::add_option(cli, "threads", "N", "CPU threads (default 0: OpenMP's).",
                  [&](const std::string& v) { threads = app::parse_int(v, "threads", 0, 1024); });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  const std::set<std::string> given = app::given_options(cli);
  try {
    ENGINE_CHECK(!path.empty(), "expected one checkpoint file; see evaluate --help");
    engine::Metadata meta = engine::read_safetensors_metadata(path);
    app::TrainConfig cfg;
    cfg.resize = 96;
    if (meta.count("config.model")) cfg = app::config_from_metadata(meta, path);
    if (!model_name.empty()) cfg.model = model_name;
    ENGINE_CHECK(!cfg.model.empty(), path,
                 " does not say which model it holds; pass --model (one of: ", app::join(models::names()), ")");
    if (resize) cfg.resize = resize;
    if (given.count("normalize")) cfg.normalize = true;
    cfg.device = device_spec;
    cfg.threads = threads;
    cfg.conv = "native";
    cfg.tf32 = false;  // evaluated in full float32, whatever --precision it was trained with
    cfg.precision = "fp32";
    engine::Device device = app::setup_runtime(cfg);
    auto model = models::create(cfg.model, models::ModelConfig{});
    model->to(device);
    engine::load_checkpoint(path, *model);
    // A run trained with --ema was evaluated with its weight averages: so is its checkpoint.
    std::unique_ptr<engine::optim::ModelEma> ema;
    if (cfg.ema > 0) {
      ema = std::make_unique<engine::optim::ModelEma>(*model, cfg.ema);
      ENGINE_CHECK(ema->load(path), path, ": trained with --ema ", cfg.ema, " but holds no weight averages (ema.*)");
      ema->swap(*model);
    }
    app::FashionMnist data = app::load_fashion_mnist(data_dir);
    app::DeviceDataset test(data.test.head(limit_test), device);
    app::EvalResult r = app::evaluate(*model, test, app::preprocess_of(cfg), batch_size);
    fmt::print("{} ({}, {} px{}{}) on {}: test loss {:.4f}  test acc {:.4f}  ({} images)\n", path, cfg.model,
               cfg.resize, cfg.normalize ? ", normalised" : "", ema ? ", EMA weights" : "", device.str(), r.loss,
               r.accuracy, r.count);
    if (meta.count("epoch")) fmt::print("checkpoint after epoch {} of {}\n", meta["epoch"], meta["config.epochs"]);
    fmt::print("per-class test accuracy:\n{}", app::per_class_table(r));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "evaluate: error: {}\n", e.what());
    return 2;
  }
}
