// Deterministic assembly of per-rank results in global order.
#pragma once
#include <cstdint>
#include <utility>

#include "distributed/communicator.h"

namespace rae::eval {

// Contiguous share [begin, end) of `n` items (or blocks) for `rank` of `size`: the first n % size
// ranks get one more. Shares follow rank order, so concatenating them in rank order is the
// global order.
std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int size);

// Concatenates every rank's `local` rows (CPU, contiguous, dim 0 = rows, any dtype; the row count
// may differ between ranks, the other dims may not) in rank order; every rank gets the result.
// `comm` may be null (one process): returns `local`.
Tensor all_gather_rows(distributed::Communicator* comm, const Tensor& local);

}  // namespace rae::eval
