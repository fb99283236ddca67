// The encode half of the cache job (data/cache_job.h) as a pipeline that keeps a GPU busy:
//
//   caller (the oneTBB pipeline's last, serial stage)   add(): images into a batch slot's host
//                                                       buffer (pinned on CUDA)
//   encoder thread   host -> device copy on its own stream, the encoder forward on the compute
//                    stream (ordered by events), the latents back to pinned memory on the copy
//                    stream: the next batch's upload overlaps this batch's forward
//   writer thread    waits for a batch's latents and hands them to the shard's sink (the HDF5
//                    ShardWriter and its statistics), off the critical path
//
// A few slots circulate (free -> filling -> encoding -> writing -> free), so decoding, copies,
// the forward and the HDF5 write of different batches run at the same time; when every slot is
// busy, add() waits (back-pressure). Batches are the same as the synchronous loop's (images in
// index order, `batch` per forward, the last one partial), so the cache bytes do not change. On
// the CPU the same threads run with plain host memory and synchronous copies.
//
// GPU-busy time: CUDA events around every forward; busy_seconds() / the wall time of the work is
// the fraction of the time the GPU spent encoding (`rae cache --benchmark`).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/vit_encoder.h"
#include "tensor/tensor.h"

namespace rae::data {

class EncodePipeline {
 public:
  // latents (n, T, C) F32 and, with flips, latents_flip (n, T, C) (else undefined), labels (n)
  // I32: host tensors, valid during the call.
  using Sink =
      std::function<void(const Tensor& latents, const Tensor& latents_flip, const Tensor& labels)>;

  // `encoder` must outlive the pipeline. `slots` >= 2 batches in flight.
  EncodePipeline(const models::VitEncoder& encoder, int64_t batch, bool flip, int slots = 4);
  ~EncodePipeline();  // stops the threads (work not finished is dropped)
  EncodePipeline(const EncodePipeline&) = delete;
  EncodePipeline& operator=(const EncodePipeline&) = delete;

  // Starts a run of images (a shard) whose latents go to `sink`, batch by batch, in order.
  void begin(Sink sink);
  // One image: its normalized (3, S, S) views (flipped ignored without flips) and label. May
  // block while every slot is busy; rethrows an error of the threads.
  void add(const float* plain, const float* flipped, int32_t label);
  // Encodes the partial last batch, waits until the sink has every batch; rethrows errors.
  void end();
  // Drops the run: what is queued is not encoded or written, the call returns once the threads
  // no longer touch the sink (call it before the sink's objects go away on an error path).
  void cancel() noexcept;

  // Sum of the encoder forwards' device time (CUDA events; host time on the CPU) since
  // construction, and the images encoded.
  double busy_seconds() const;
  int64_t images() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rae::data
