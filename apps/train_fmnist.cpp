// train_fmnist: trains a model from the zoo on Fashion-MNIST. `train_fmnist resnet50 --lr 0.05`.
// See docs/training.md, or run with --help.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "apps/common/cli.h"
#include "apps/common/config.h"
#include "apps/common/fmnist.h"
#include "apps/common/omp_env.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/random.h"
#include "kernels/cpu/blas_info.h"
#include "models/memory.h"
#include "models/registry.h"

namespace {

std::string description() {
  const std::string bound = fmt::format("{:g} x ln({}) = {:.1f}", app::kDivergenceFactor, app::kNumClasses,
                                        app::divergence_bound(app::kNumClasses));
  return engine::cat(
      "Trains MODEL on Fashion-MNIST with SGD and writes, in --out: config.json, metrics.csv, metrics.jsonl,\n"
      "curves.png/.svg and last.safetensors / best.safetensors (torchvision parameter names, optimizer momentum,\n"
      "epoch and metrics in the metadata); only checkpoints whose every tensor is finite are written. Ctrl-C or\n"
      "SIGTERM finishes the current batch, saves last.safetensors and exits; --resume continues exactly where it\n"
      "stopped. A final training batch of a single example is dropped (batch norm needs two; --drop-last drops\n"
      "every incomplete one). A run stops as diverged when a batch's training loss or the validation or test\n"
      "loss is not finite or exceeds ",
      bound, " (a uniform guess scores ln 10).\n",
      "Exit codes: 0 done, 1 error during training, 2 bad usage or data (checked before training starts: options,\n"
      "--device, --conv, --out, the data and the whole --resume checkpoint), 3 diverged, 130 interrupted by\n"
      "Ctrl-C, 143 by SIGTERM.");
}

std::string models_epilog() {
  std::string out = "models:\n  ";
  size_t col = 2;
  for (const auto& name : models::names()) {
    if (col + name.size() + 1 > 100) out += "\n  ", col = 2;
    out += name + " ";
    col += name.size() + 1;
  }
  return out +
         "\n\nexamples:\n"
         "  train_fmnist resnet20 --resize 28 --epochs 1 --device cpu   # a quick CPU run\n"
         "  train_fmnist resnet50 --lr 0.05                             # the default 96 px run\n"
         "  train_fmnist resnet18 --recipe d2l --lr 0.05                # d2l.ai's ResNet chapter\n"
         "  train_fmnist --resume runs/resnet50-20240101-120000/last.safetensors --epochs 20";
}

}  // namespace

int main(int argc, char** argv) {
  app::relaunch_with_passive_openmp(argv);
  app::TrainConfig cfg;
  CLI::App cli{description(), "train_fmnist"};
  app::configure_cli(cli, "train_fmnist MODEL [options]\n       train_fmnist --resume CKPT [options]", models_epilog());
  app::add_train_options(cli, cfg);
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  const std::set<std::string> given = app::given_options(cli);
  std::shared_ptr<engine::nn::Module> model;
  app::FashionMnist data;
  try {
    const std::vector<std::string> names = models::names();
    if (!cfg.resume.empty()) {
      app::TrainConfig saved = app::config_from_metadata(engine::read_safetensors_metadata(cfg.resume), cfg.resume);
      cfg = app::merge_for_resume(saved, cfg, given);
      if (!given.count("out")) {
        std::string parent = std::filesystem::path(cfg.resume).parent_path().string();
        cfg.out = parent.empty() ? "." : parent;
      }
    } else {
      ENGINE_CHECK(!cfg.model.empty(), "no MODEL given; choose one of: ", app::join(names),
                   " (see train_fmnist --help)");
      app::apply_recipe(cfg, given);
      if (cfg.out.empty()) cfg.out = app::default_out_dir(cfg.model);
    }
    bool known = false;
    for (const auto& n : names) known = known || n == cfg.model;
    ENGINE_CHECK(known, "unknown model '", cfg.model, "'; choose one of: ", app::join(names));
    app::validate(cfg);
    data = app::load_fashion_mnist(cfg.data);
    engine::default_generator().seed(static_cast<uint64_t>(cfg.seed));
    model = models::create(cfg.model, models::ModelConfig{});
    app::check_before_training(cfg, data, *model);
    // Refuse a step that cannot fit before anything large is allocated. Data still to come: the dataset on the
    // device (on the CPU two more host copies: the trainer's subsets and its DeviceDataset).
    const engine::Device device = engine::resolve_device(cfg.device);
    if (device.is_cpu()) fmt::print("{}\n", kernels::cpu::machine_description());  // what runs, first
    const int64_t data_bytes =
        models::dataset_bytes(data.train.count + data.test.count, data.train.rows, data.train.cols);
    const models::MemoryFit fit = models::check_step_memory(*model,
                                                            {{cfg.batch_size, 1, cfg.resize, cfg.resize},
                                                             engine::DType::f32,
                                                             device,
                                                             cfg.momentum > 0,
                                                             device.is_cpu() ? 2 * data_bytes : data_bytes,
                                                             device.is_cuda() && cfg.cuda_graphs == "on"},
                                                            models::available_memory(device));
    ENGINE_CHECK(fit.fits, fit.message);
    fmt::print("{}\n", fit.message);
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_fmnist: error: {}\n", e.what());
    return 2;
  }

  try {
    app::install_interrupt_handler();
    app::TrainResult result = app::train(cfg, model, data);
    fmt::print(result.status == app::TrainStatus::finished ? stdout : stderr, "{}\n", result.message);
    return result.exit_code();
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_fmnist: error: {}\n", e.what());
    return 1;
  }
}
