// Counter-based RNG (Philox4x32-10). Every random number is a pure function of
// (seed, purpose, step, index, offset), so a sample's noise does not depend on which rank,
// micro-batch or thread draws it. Host and device share this header.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/dtype.h"  // RAE_HD

namespace rae::rng {

struct u32x4 {
  uint32_t v[4];
};

RAE_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds (Salmon et al., SC'11).
RAE_HD u32x4 philox4x32(u32x4 ctr, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, ctr.v[0], hi0, lo0);
    mulhilo32(0xCD9E8D57u, ctr.v[2], hi1, lo1);
    ctr = u32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// What a random stream is for; part of the counter so streams never overlap.
enum class Purpose : uint32_t {
  Init = 1,      // parameter initialisation (index = parameter id)
  Noise = 2,     // flow-matching noise epsilon (index = global sample)
  Time = 3,      // timestep draw
  Dropout = 4,   // class-label dropout
  Flip = 5,      // horizontal flip choice
  Shuffle = 6,   // epoch permutation (step = epoch)
  Sample = 7,    // sampling noise
  Test = 8,      // tests and synthetic data
  NoiseAug = 9,  // stage-1 latent noise augmentation
  DiffAug = 10,  // stage-1 discriminator augmentation (index = global sample)
  Crop = 11,     // stage-1 random crop of a training image (step = epoch, index = sample)
};

// A stream key: one (seed, purpose, step, index) names an independent stream of 2^34 numbers.
struct Key {
  uint64_t seed = 0;
  Purpose purpose = Purpose::Test;
  uint64_t step = 0;
  uint64_t index = 0;
};

// Four uint32 for block `block` of the stream. Layout: key = seed; counter = (block, index lo,
// step lo, purpose << 24 | index hi 24 bits | step hi bits folded). Steps < 2^32, indices < 2^56.
RAE_HD u32x4 block_bits(const Key& k, uint32_t block) {
  u32x4 c{{block, static_cast<uint32_t>(k.index), static_cast<uint32_t>(k.step),
           (static_cast<uint32_t>(k.purpose) << 24) ^
               static_cast<uint32_t>((k.index >> 32) & 0xffffffu) ^
               static_cast<uint32_t>(k.step >> 32)}};
  return philox4x32(c, static_cast<uint32_t>(k.seed), static_cast<uint32_t>(k.seed >> 32));
}

// Uniform in (0, 1): never exactly 0 or 1 (safe for log and logit).
RAE_HD float bits_to_uniform(uint32_t x) {
  return (static_cast<float>(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

// Element `i` of the stream as uniform(0,1).
RAE_HD float uniform_at(const Key& k, uint64_t i) {
  u32x4 b = block_bits(k, static_cast<uint32_t>(i >> 2));
  return bits_to_uniform(b.v[i & 3]);
}

// Element `i` of the stream as a standard normal (Box-Muller over the pair (2j, 2j+1)).
RAE_HD float normal_at(const Key& k, uint64_t i) {
  uint64_t pair = i >> 1;
  u32x4 b = block_bits(k, static_cast<uint32_t>(pair >> 1));
  uint32_t a = b.v[(pair & 1) * 2], c = b.v[(pair & 1) * 2 + 1];
  float u1 = bits_to_uniform(a), u2 = bits_to_uniform(c);
  float r = sqrtf(-2.0f * logf(u1));
  float th = 6.283185307179586f * u2;
  return (i & 1) ? r * sinf(th) : r * cosf(th);
}

}  // namespace rae::rng
