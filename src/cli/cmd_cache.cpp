// rae cache --data DIR --encoder DIR_OR_PRESET --out CACHE_DIR [...]   (under mpirun or alone)
// rae cache verify CACHE_DIR
// rae cache ... --benchmark FILE   (one process: decode-bound, encoder-bound and end-to-end
//                                   images/s and the GPU-busy fraction, as JSON)

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "data/cache_job.h"
#include "data/image_decode.h"
#include "data/latent_cache_verify.h"
#include "distributed/mpi_communicator.h"

namespace rae::cli {

namespace {

int cache_verify(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string dir;
  int threads = 2;
  po::options_description opts(
      "rae cache verify CACHE_DIR: check every shard's presence, size, checksum and structure");
  opts.add_options()("help,h", "show this help")("dir", po::value(&dir)->required(),
                                                 "cache directory")(
      "threads", po::value(&threads)->default_value(2), "shards checksummed in parallel");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  cache::VerifyReport rep = cache::verify_cache(dir, threads);
  std::fputs(rep.summary().c_str(), rep.ok() ? stdout : stderr);
  return rep.ok() ? 0 : 1;
}

}  // namespace

int cmd_cache(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "verify") == 0) return cache_verify(argc - 1, argv + 1);
  namespace po = boost::program_options;
  cachejob::CacheJobOptions o;
  po::options_description opts(
      "rae cache: encode an ImageFolder tree into a latent cache (run under mpirun -np N, or "
      "alone);\n"
      "'rae cache verify CACHE_DIR' checks a cache");
  opts.add_options()("help,h", "show this help")("data", po::value(&o.data_dir)->required(),
                                                 "dataset root (DIR/<split>/<class>/*.JPEG)")(
      "encoder", po::value(&o.encoder)->default_value(o.encoder),
      "HF model directory or preset (tiny-random)")("out", po::value(&o.out_dir)->required(),
                                                    "cache directory (created; a rerun resumes)")(
      "split", po::value(&o.split)->default_value(o.split), "split folder")(
      "labels", po::value(&o.label_file), "label file for a flat split ('<file> <class>' lines)")(
      "image-size", po::value(&o.image_size)->default_value(o.image_size), "ADM center-crop size")(
      "encoder-input", po::value(&o.encoder_input)->default_value(0),
      "encoder input size (0: family default)")(
      "shard-size", po::value(&o.shard_size)->default_value(o.shard_size), "images per shard")(
      "dtype", po::value(&o.dtype)->default_value(o.dtype), "storage dtype: bf16, f16, f32")(
      "batch", po::value(&o.batch)->default_value(o.batch), "images per encoder forward")(
      "no-flip", "do not store the horizontally flipped view")(
      "threads", po::value(&o.threads)->default_value(0), "threads per rank (0: all cores)")(
      "device", po::value(&o.device)->default_value(o.device),
      "encoder device: cpu, cuda (GPU rank % count), cuda:N")(
      "timeout-s", po::value<double>()->default_value(1800),
      "watchdog: a rank waiting longer for another (e.g. one shard's encode) ends the job")(
      "progress", po::value(&o.progress_seconds)->default_value(o.progress_seconds),
      "seconds between progress lines")("limit", po::value(&o.limit)->default_value(0),
                                        "encode only the first N images (0: all)")(
      "overwrite", "discard a cache in --out and encode again (a rerun without it resumes)")(
      "max-image-pixels", po::value<int64_t>()->default_value(data::max_image_pixels()),
      "refuse images with more pixels (decompression bombs; PIL's limit; 0: none)")(
      "benchmark", po::value<std::string>(),
      "FILE: measure the job (one process; decode-bound, encoder-bound, end to end with the "
      "GPU-busy fraction; the cache in --out is rewritten) and write the report as JSON");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  o.flip = vm.count("no-flip") == 0;
  o.overwrite = vm.count("overwrite") > 0;
  RAE_CHECK(o.batch >= 1, "--batch must be >= 1, got ", o.batch);
  RAE_CHECK(o.shard_size >= 1, "--shard-size must be >= 1, got ", o.shard_size);
  RAE_CHECK(o.threads >= 0, "--threads must be >= 0 (0: all cores), got ", o.threads);
  RAE_CHECK(o.limit >= 0, "--limit must be >= 0 (0: all images), got ", o.limit);
  RAE_CHECK(o.progress_seconds > 0, "--progress must be > 0 seconds, got ", o.progress_seconds);
  RAE_CHECK(o.image_size >= 8, "--image-size must be >= 8, got ", o.image_size);
  data::set_max_image_pixels(vm["max-image-pixels"].as<int64_t>());
  distributed::DistOptions d = distributed::DistOptions::from_env();
  d.timeout_s = vm["timeout-s"].as<double>();
  auto world = distributed::MpiCommunicator::create_world(d);
  const int rank = world->rank();
  if (vm.count("benchmark")) {
    nlohmann::json rep =
        cachejob::run_cache_benchmark(o, *world, vm["benchmark"].as<std::string>());
    std::printf("%s\n", rep.dump(1).c_str());
    distributed::finalize(*world);
    return 0;
  }
  cachejob::CacheJobResult r = cachejob::run_cache_job(o, *world);
  if (rank == 0)
    std::printf(
        "cache: %lld images encoded, shards: %lld written, %lld verified and skipped, %lld total\n",
        static_cast<long long>(r.images), static_cast<long long>(r.shards_written),
        static_cast<long long>(r.shards_skipped), static_cast<long long>(r.shards_total));
  distributed::finalize(*world);  // success only: an error returns non-zero and mpirun ends the job
  return 0;
}

}  // namespace rae::cli
