#include "eval/gather.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace rae::eval {

std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int size) {
  RAE_CHECK(size > 0 && rank >= 0 && rank < size, "rank_share: rank ", rank, " of ", size);
  const int64_t base = n / size, extra = n % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

Tensor all_gather_rows(distributed::Communicator* comm, const Tensor& local) {
  RAE_CHECK(!local.is_cuda() && local.is_contiguous() && local.ndim() >= 1,
            "all_gather_rows: need a contiguous CPU tensor with rows, got ", local.str());
  if (!comm || comm->size() == 1) return local;
  const int size = comm->size();
  // Every rank's row count (and its row shape, checked through the element count per row).
  int64_t row_numel = 1;
  for (int i = 1; i < local.ndim(); ++i) row_numel *= local.dim(i);
  Tensor mine = Tensor::empty({2}, DType::I64);
  mine.data<int64_t>()[0] = local.dim(0);
  mine.data<int64_t>()[1] = row_numel;
  Tensor all = Tensor::empty({2 * size}, DType::I64);
  comm->all_gather(mine, all);
  const int64_t* counts = all.data<int64_t>();
  int64_t max_rows = 0, total = 0;
  for (int r = 0; r < size; ++r) {
    RAE_CHECK(counts[2 * r + 1] == row_numel, "all_gather_rows: rank ", r, " has rows of ",
              counts[2 * r + 1], " elements, rank ", comm->rank(), " of ", row_numel);
    max_rows = std::max(max_rows, counts[2 * r]);
    total += counts[2 * r];
  }
  Shape padded_shape = local.shape();
  padded_shape[0] = max_rows;
  Tensor padded = Tensor::zeros(padded_shape, local.dtype());
  if (local.numel()) std::memcpy(padded.raw(), local.raw(), local.nbytes());
  Shape gathered_shape = local.shape();
  gathered_shape[0] = max_rows * size;
  Tensor gathered = Tensor::empty(gathered_shape, local.dtype());
  comm->all_gather(padded, gathered);
  Shape out_shape = local.shape();
  out_shape[0] = total;
  Tensor out = Tensor::empty(out_shape, local.dtype());
  const size_t row_bytes = static_cast<size_t>(row_numel) * dtype_size(local.dtype());
  auto* dst = static_cast<char*>(out.raw());
  const auto* src = static_cast<const char*>(gathered.raw());
  for (int r = 0; r < size; ++r) {
    const size_t bytes = static_cast<size_t>(counts[2 * r]) * row_bytes;
    std::memcpy(dst, src + static_cast<size_t>(r) * max_rows * row_bytes, bytes);
    dst += bytes;
  }
  return out;
}

}  // namespace rae::eval
