// evaluate: test-set accuracy of a checkpoint written by train_fmnist (or any safetensors file with the model's
// torchvision names, given --model and the preprocessing).
#include <cstdio>
#include <memory>

#include "apps/common/cli.h"
#include "apps/common/config.h"
#include "apps/common/data.h"
#include "apps/common/fmnist.h"
#include "apps/common/omp_env.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/optim/ema.h"
#include "models/registry.h"

int main(int argc, char** argv) {
  app::relaunch_with_passive_openmp(argv);
  std::string model_name, device_spec = "auto", data_dir = app::kDefaultDataDir;
  int64_t batch_size = 256, limit_test = 0, resize = 0, threads = 0;
  bool normalize = false;
  app::Cli cli("evaluate", "evaluate CKPT [options]",
               "Loads CKPT (a .safetensors checkpoint) and prints its Fashion-MNIST test loss, accuracy and\n"
               "per-class accuracy. The model and preprocessing come from the checkpoint's metadata when\n"
               "train_fmnist wrote it; --model, --resize and --normalize override or supply them.");
  cli.add({"model", "NAME", "Model name (default: the checkpoint's).", [&](const std::string& v) { model_name = v; }});
  cli.add({"resize", "N", "Image side (default: the checkpoint's, else 96).",
           [&](const std::string& v) { resize = app::parse_int(v, "resize", 8, 512); }});
  cli.add({"normalize", "", "Normalise inputs (default: as the checkpoint was trained).",
           [&](const std::string&) { normalize = true; }});
  cli.add(
      {"device", "DEV", "auto, cpu, cuda or cuda:N (default auto).", [&](const std::string& v) { device_spec = v; }});
  cli.add({"data", "DIR", "Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist).",
           [&](const std::string& v) { data_dir = v; }});
  cli.add({"batch-size", "N", "Examples per forward pass (default 256).",
           [&](const std::string& v) { batch_size = app::parse_int(v, "batch-size", 1, 65536); }});
  cli.add({"limit-test", "N", "Evaluate only the first N test images (default all).",
           [&](const std::string& v) { limit_test = app::parse_int(v, "limit-test", 0, INT64_MAX); }});
  cli.add({"threads", "N", "CPU threads (default: OpenMP's).",
           [&](const std::string& v) { threads = app::parse_int(v, "threads", 0, 1024); }});
  try {
    std::vector<std::string> pos = cli.parse(argc, argv);
    if (cli.help_requested()) {
      std::fputs(cli.help().c_str(), stdout);
      return 0;
    }
    ENGINE_CHECK(pos.size() == 1, "expected one checkpoint file; see evaluate --help");
    const std::string path = pos[0];
    engine::Metadata meta = engine::read_safetensors_metadata(path);
    app::TrainConfig cfg;
    cfg.resize = 96;
    if (meta.count("config.model")) cfg = app::config_from_metadata(meta, path);
    if (!model_name.empty()) cfg.model = model_name;
    ENGINE_CHECK(!cfg.model.empty(), path,
                 " does not say which model it holds; pass --model (one of: ", app::join(models::names()), ")");
    if (resize) cfg.resize = resize;
    if (cli.given("normalize")) cfg.normalize = normalize;
    cfg.device = device_spec;
    cfg.threads = threads;
    cfg.conv = "native";
    cfg.tf32 = false;
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
    std::printf("%s (%s, %lld px%s%s) on %s: test loss %.4f  test acc %.4f  (%lld images)\n", path.c_str(),
                cfg.model.c_str(), (long long)cfg.resize, cfg.normalize ? ", normalised" : "",
                ema ? ", EMA weights" : "", device.str().c_str(), r.loss, r.accuracy, (long long)r.count);
    if (meta.count("epoch"))
      std::printf("checkpoint after epoch %s of %s\n", meta["epoch"].c_str(), meta["config.epochs"].c_str());
    std::printf("per-class test accuracy:\n%s", app::per_class_table(r).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate: error: %s\n", e.what());
    return 2;
  }
}
