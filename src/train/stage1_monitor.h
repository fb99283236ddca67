// What a stage-1 run shows besides its metrics: periodic reconstruction grids of the EMA
// decoder (a fixed set of images: the top row the inputs, the bottom row their reconstructions,
// as the release's sample grid) written as PNG under RUN/reconstructions/ and to TensorBoard, and
// with a reference (--ref) the rFID of the EMA decoder's reconstructions of an evaluation set
// (src/eval's evaluate_samples: the ADM suite's FID) and their PSNR, appended to RUN/eval.jsonl
// and logged to TensorBoard.
//
// The EMA weights are sharded like the masters: every rank gathers them (one all-gather per
// bucket, ShardedParams::gather_groups) into a private decoder. Reconstruction grids run on rank
// 0; the evaluation splits its images over the ranks and gathers the reconstructions to every
// rank (evaluate_samples wants the same images everywhere). Every rank calls on_step() at every
// step (the trainer's step callback).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "models/vit_decoder.h"
#include "train/stage1.h"
#include "train/trainer.h"

namespace rae::train {

struct Stage1MonitorOptions {
  std::string run_dir;         // "" : no files
  std::string images;          // image folder of the grids and the evaluation (ADM center crop)
  std::string ref;             // reference .npz for rFID ("": no evaluation)
  std::string inception;       // InceptionV3 weights (safetensors) or "synthetic"
  std::string device = "cpu";  // the evaluation network's device (the training device)
  int64_t total_steps = 0;     // the run's last step: a grid and an evaluation there
};

class Stage1Monitor {
 public:
  // `world`: every rank of the job on the host (MPI), null for one process.
  Stage1Monitor(Trainer& trainer, Stage1Objective& objective, const Stage1MonitorOptions& opts,
                distributed::Communicator* world);
  ~Stage1Monitor();
  void on_step(const StepStats& s);
  // The EMA decoder now (collective): a private module on the training device.
  std::unique_ptr<models::VitDecoder> ema_decoder();
  // Grid of the inputs and their reconstructions by `decoder` (rank 0 writes it).
  void write_grid(int64_t step, models::VitDecoder& decoder);
  // rFID and PSNR of `decoder`'s reconstructions of the evaluation images (collective).
  void evaluate(int64_t step, models::VitDecoder& decoder);

 private:
  Tensor grid_images();  // (count, S, S, 3) U8, the first images of the folder, center-cropped
  Trainer& trainer_;
  Stage1Objective& obj_;
  Stage1MonitorOptions opts_;
  distributed::Communicator* world_;
  Tensor grid_inputs_;
};

}  // namespace rae::train
