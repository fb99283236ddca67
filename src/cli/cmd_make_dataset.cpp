// rae make-dataset --out DIR --classes K --per-class N [--size S] [--size-max M] [--seed X]
//                  [--threads T] [--overwrite]
// ImageNet-like JPEGs for the cache job's device benchmark (~20,000 of 400-500 px):
//   rae make-dataset --out D --classes 100 --per-class 200 --size 400 --size-max 500 --jpeg-only
//                    --threads 0
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "datasets/procedural.h"

namespace rae::cli {

int cmd_make_dataset(int argc, char** argv) {
  namespace po = boost::program_options;
  datasets::ProceduralSpec spec;
  std::string out;
  po::options_description opts(
      "rae make-dataset: write a procedural class-conditional ImageFolder dataset");
  opts.add_options()("help,h", "show this help")("out", po::value(&out)->required(),
                                                 "output directory (DIR/<split>/<wnid>/*.JPEG)")(
      "classes", po::value(&spec.classes)->default_value(10), "number of classes")(
      "per-class", po::value(&spec.per_class)->default_value(30), "images per class")(
      "size", po::value(&spec.size)->default_value(64), "shorter image side in pixels")(
      "size-max", po::value(&spec.size_max)->default_value(0),
      "if > size: each image's shorter side is drawn from [size, size-max]")(
      "threads", po::value(&spec.threads)->default_value(1),
      "images written in parallel (0: all cores); the files do not depend on it")(
      "jpeg-only", po::bool_switch(&spec.jpeg_only),
      "only RGB JPEGs (else a few gray, CMYK and PNG files exercise every decoder path)")(
      "seed", po::value(&spec.seed)->default_value(0), "RNG seed")(
      "split", po::value(&spec.split)->default_value("train"), "split folder name")(
      "quality", po::value(&spec.jpeg_quality)->default_value(90), "JPEG quality")(
      "overwrite", po::bool_switch(&spec.overwrite),
      "replace a split that make-dataset wrote before (else a non-empty split is an error)");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  datasets::ProceduralReport rep = datasets::write_procedural_dataset(out, spec);
  std::printf(
      "make-dataset: wrote %lld images to %s/%s (%lld RGB JPEG, %lld gray JPEG, %lld CMYK JPEG, "
      "%lld PNG, %lld PNG named .JPEG)\n",
      static_cast<long long>(rep.total()), out.c_str(), spec.split.c_str(),
      static_cast<long long>(rep.rgb_jpeg), static_cast<long long>(rep.gray_jpeg),
      static_cast<long long>(rep.cmyk_jpeg), static_cast<long long>(rep.png),
      static_cast<long long>(rep.png_named_jpeg));
  return 0;
}

}  // namespace rae::cli
