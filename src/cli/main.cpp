// rae: the one executable. `rae <subcommand> --help` for each subcommand's options.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "train/config.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

const Subcommand kCommands[] = {
    {"train", rae::cli::cmd_train, "train DiT^DH with flow matching on a latent cache (resumes)"},
    {"decoder-train", rae::cli::cmd_decoder_train,
     "train the stage-1 decoder (L1 + LPIPS + GAN) on a frozen encoder (resumes)"},
    {"synth-cache", rae::cli::cmd_synth_cache, "write a synthetic latent cache (smoke tests)"},
    {"cache", rae::cli::cmd_cache,
     "encode an image tree into a latent cache (MPI); 'cache verify DIR'"},
    {"make-dataset", rae::cli::cmd_make_dataset,
     "write a procedural class-conditional image dataset"},
    {"model-forward", rae::cli::cmd_model_forward,
     "run a checkpoint on inputs from a safetensors file"},
    {"export", rae::cli::cmd_export, "write a consolidated safetensors model from a run directory"},
    {"sample", rae::cli::cmd_sample,
     "class-conditional samples to images and the ADM .npz (MPI, resumable)"},
    {"decode", rae::cli::cmd_decode, "decode latents to PNG images with a stage-1 decoder"},
    {"reconstruct", rae::cli::cmd_reconstruct,
     "encode and decode real images: side by side, PSNR and SSIM"},
    {"info", rae::cli::cmd_info, "print build and device information"},
    {"eval", rae::cli::cmd_eval, "FID, sFID, IS, precision/recall of samples (MPI); 'eval stats'"},
    {"status", rae::cli::cmd_status,
     "step, loss, throughput, ETA, last checkpoint of a run directory"},
};

void usage(FILE* f) {
  std::fprintf(f, "usage: rae <subcommand> [options]\n\nsubcommands:\n");
  for (const auto& c : kCommands) std::fprintf(f, "  %-14s %s\n", c.name, c.help);
  std::fprintf(f, "\n'rae <subcommand> --help' lists a subcommand's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // Boost.Program_options would loop forever reporting an option that contains one of its
  // message placeholders (train/config.h): refused here for every subcommand.
  for (int i = 1; i < argc; ++i) {
    const std::string p = rae::train::program_options_placeholder_in(argv[i]);
    if (!p.empty()) {
      std::fprintf(stderr, "rae: error: argument '%s' contains '%s', which is not allowed\n",
                   argv[i], p.c_str());
      return 2;
    }
  }
  for (const auto& c : kCommands) {
    if (std::string(argv[1]) == c.name) {
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rae %s: error: %s\n", c.name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "rae: unknown subcommand '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
