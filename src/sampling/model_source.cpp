#include "sampling/model_source.h"

#include <sys/stat.h>

#include <filesystem>

#include "core/checksum.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace rae::sampling {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The model of checkpoint `dir` that `wanted` accepts; exactly one must.
std::string pick_model(const std::string& dir, const std::string& what, const ModelFilter& wanted) {
  const auto models = train::checkpoint_models(dir);
  RAE_CHECK(!models.empty(), what, " ", dir, ": the checkpoint lists no model");
  if (models.size() == 1) return models[0].first;
  std::string found, all;
  int n = 0;
  for (const auto& [name, spec] : models) {
    all += (all.empty() ? "" : ", ") + name + " (" + spec.type + ")";
    if (wanted && !wanted(name, spec)) continue;
    found = name;
    ++n;
  }
  RAE_CHECK(n > 0, what, " ", dir, ": the checkpoint has no model of the wanted kind (it has ", all,
            ")");
  RAE_CHECK(n == 1, what, " ", dir, ": the checkpoint has several models of the wanted kind (", all,
            "); export the one to use with `rae export --model NAME`");
  return found;
}

}  // namespace

bool parse_random_source(const std::string& source, std::string* preset, uint64_t* seed) {
  if (source.rfind("random:", 0) != 0) return false;
  const std::string rest = source.substr(7);
  const size_t colon = rest.find(':');
  *preset = rest.substr(0, colon);
  *seed = 0;
  if (colon != std::string::npos) {
    const std::string digits = rest.substr(colon + 1);
    RAE_CHECK(!digits.empty() && digits.size() <= 19 &&
                  digits.find_first_not_of("0123456789") == std::string::npos,
              "'", source, "': bad seed (expected random:PRESET[:SEED])");
    *seed = std::stoull(digits);
  }
  return true;
}

ModelSource resolve_model_source(const std::string& arg, const std::string& what, bool ema,
                                 const ModelFilter& wanted) {
  ModelSource s;
  s.arg = arg;
  s.ema = ema;
  std::string preset;
  if (parse_random_source(arg, &preset, &s.seed)) {
    s.kind = ModelSource::Kind::Random;
    s.spec = models::model_preset(preset);  // its interface is checked when it is built
    return s;
  }
  RAE_CHECK(!arg.empty(), what, " is empty");
  if (fs::is_regular_file(arg)) {
    s.kind = ModelSource::Kind::File;
    s.path = arg;
    return s;
  }
  RAE_CHECK(fs::is_directory(arg), what, " ", arg, ": no such file or directory");
  s.kind = ModelSource::Kind::Checkpoint;
  if (fs::exists(fs::path(arg) / "manifest.json")) {
    s.path = arg;  // one checkpoint directory
    const std::string problem = train::verify_checkpoint(arg);
    RAE_CHECK(problem.empty(), what, " ", arg, ": the checkpoint does not verify: ", problem);
  } else {
    auto ck = train::latest_valid_checkpoint(arg);
    RAE_CHECK(ck.has_value(), what, " ", arg,
              ": not a safetensors file, a checkpoint directory or a run directory with a valid "
              "checkpoint");
    s.path = *ck;
  }
  s.model_name = pick_model(s.path, what, wanted);
  return s;
}

LoadedWeights load_weights(const ModelSource& src) {
  LoadedWeights w;
  w.where = describe(src);
  if (src.kind == ModelSource::Kind::File) {
    safetensors::File f = safetensors::load(src.path);
    w.tensors = std::move(f.tensors);
    w.metadata = std::move(f.metadata);
  } else {
    RAE_CHECK(src.kind == ModelSource::Kind::Checkpoint, "load_weights: ", src.arg,
              " is a random preset, not weights");
    train::ExportedModel m = train::consolidate_checkpoint(src.path, src.model_name, src.ema);
    w.tensors = std::move(m.tensors);
    w.metadata = std::move(m.metadata);
  }
  return w;
}

json source_identity(const ModelSource& src) {
  switch (src.kind) {
    case ModelSource::Kind::Random:
      return {{"random", src.spec.str()}, {"seed", src.seed}};
    case ModelSource::Kind::Checkpoint: {
      const std::string manifest = (fs::path(src.path) / "manifest.json").string();
      return {{"checkpoint", fs::absolute(src.path).lexically_normal().string()},
              {"model", src.model_name},
              {"weights", src.ema ? "ema" : "model"},
              {"manifest_xxh64", file_checksum(manifest)}};
    }
    case ModelSource::Kind::File:
      break;
  }
  struct stat st {};
  RAE_CHECK(::stat(src.path.c_str(), &st) == 0, "cannot stat '", src.path, "'");
  return {{"path", fs::absolute(src.path).lexically_normal().string()},
          {"bytes", static_cast<int64_t>(st.st_size)},
          {"mtime", static_cast<int64_t>(st.st_mtime)}};
}

std::string describe(const ModelSource& src) {
  if (src.kind == ModelSource::Kind::Checkpoint)
    return src.path + " (model '" + src.model_name + "', " + (src.ema ? "EMA" : "trained") +
           " weights)";
  return src.kind == ModelSource::Kind::Random ? src.arg : src.path;
}

}  // namespace rae::sampling
