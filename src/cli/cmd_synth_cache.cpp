// rae synth-cache: writes a synthetic class-conditional latent cache (see
// data/latent_cache_synth.h).
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "data/latent_cache_synth.h"

namespace rae::cli {

namespace po = boost::program_options;

namespace {
// "16" -> 16x16, "8x4" -> H=8, W=4.
void parse_grid(const std::string& s, int64_t* h, int64_t* w) {
  try {
    size_t x = s.find('x');
    size_t used = 0;
    *h = std::stoll(s.substr(0, x), &used);
    if (used != (x == std::string::npos ? s.size() : x)) throw std::invalid_argument(s);
    if (x == std::string::npos) {
      *w = *h;
    } else {
      std::string rest = s.substr(x + 1);
      *w = std::stoll(rest, &used);
      if (used != rest.size()) throw std::invalid_argument(s);
    }
  } catch (const std::exception&) {
    RAE_THROW("option '--grid': expected H or HxW, got '", s, "'");
  }
}
}  // namespace

int cmd_synth_cache(int argc, char** argv) {
  cache::SynthOptions o;
  std::string grid = "16", dtype = "bf16";
  po::options_description desc("rae synth-cache options");
  desc.add_options()("help,h", "show this help")("out", po::value(&o.out)->required(),
                                                 "cache directory to write")(
      "samples", po::value(&o.samples)->required(), "number of samples")(
      "grid", po::value(&grid)->default_value("16"), "token grid: H (square) or HxW")(
      "channels", po::value(&o.channels)->required(), "channels per token")(
      "classes", po::value(&o.classes)->default_value(10), "number of classes")(
      "shard-size", po::value(&o.shard_size)->default_value(4096), "samples per shard file")(
      "dtype", po::value(&dtype)->default_value("bf16"), "storage dtype: bf16, f16 or f32")(
      "seed", po::value(&o.seed)->default_value(0), "RNG seed")(
      "flip", po::bool_switch(&o.flip), "also write latents_flip (the grid mirrored along W)")(
      "overwrite", po::bool_switch(&o.overwrite),
      "replace the cache files in a non-empty --out (other files are kept)")(
      "noise-std", po::value(&o.noise_std)->default_value(0.3f),
      "per-sample noise std around the class pattern");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: rae synth-cache --out DIR --samples N --channels C [options]\n"
              << desc << "\n";
    return 0;
  }
  po::notify(vm);
  parse_grid(grid, &o.grid_h, &o.grid_w);
  o.dtype = cache::storage_dtype_from_name(dtype);
  auto t0 = std::chrono::steady_clock::now();
  cache::Manifest m = cache::write_synthetic_cache(o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t bytes = 0;
  for (const auto& s : m.shards) bytes += s.bytes;
  std::printf(
      "wrote %s: %lld samples, %zu shards, grid %lldx%lld, %lld channels, %s, %lld classes, %.1f "
      "MB in %.2f s\n",
      o.out.c_str(), static_cast<long long>(m.total_samples), m.shards.size(),
      static_cast<long long>(o.grid_h), static_cast<long long>(o.grid_w),
      static_cast<long long>(o.channels), dtype.c_str(), static_cast<long long>(o.classes),
      bytes / 1e6, secs);
  return 0;
}

}  // namespace rae::cli
