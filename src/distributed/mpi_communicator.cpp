#include "distributed/mpi_communicator.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "distributed/watchdog.h"

namespace rae::distributed {
namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  RAE_THROW("MPI call ", what, " failed: ", std::string(text, len));
}

// Handles created once per process after MPI_Init: the 16-bit float types and the bf16 sum.
struct MpiTypes {
  MPI_Datatype bf16 = MPI_DATATYPE_NULL, f16 = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL;
};

void bf16_sum_fn(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i)
    b[i] = f32_to_bf16_bits(bf16_bits_to_f32(a[i]) + bf16_bits_to_f32(b[i]));
}

MpiTypes& types() {
  static MpiTypes t = [] {
    MpiTypes m;
    mpi_check(MPI_Type_contiguous(2, MPI_BYTE, &m.bf16), "MPI_Type_contiguous(bf16)");
    mpi_check(MPI_Type_commit(&m.bf16), "MPI_Type_commit(bf16)");
    mpi_check(MPI_Type_contiguous(2, MPI_BYTE, &m.f16), "MPI_Type_contiguous(f16)");
    mpi_check(MPI_Type_commit(&m.f16), "MPI_Type_commit(f16)");
    mpi_check(MPI_Op_create(&bf16_sum_fn, /*commute=*/1, &m.bf16_sum), "MPI_Op_create(bf16 sum)");
    return m;
  }();
  return t;
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::BF16:
      return types().bf16;
    case DType::F16:
      return types().f16;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::U8:
      return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_sum(DType t) {
  return t == DType::BF16 ? types().bf16_sum : MPI_SUM;
}

int mpi_count(int64_t n, const Communicator& c, const char* what) {
  RAE_CHECK(n <= INT_MAX, c.label(), ".", what, ": ", n, " elements exceed the MPI count limit");
  return static_cast<int>(n);
}

// Divides a reduced tensor by `n` in place (the Avg op).
void scale_by_inverse(const Tensor& t, int n) {
  const int64_t m = t.numel();
  switch (t.dtype()) {
    case DType::F32: {
      float* p = t.data<float>();
      const float inv = 1.0f / static_cast<float>(n);
      for (int64_t i = 0; i < m; ++i) p[i] *= inv;
      break;
    }
    case DType::F64: {
      double* p = t.data<double>();
      for (int64_t i = 0; i < m; ++i) p[i] /= n;
      break;
    }
    case DType::BF16: {
      uint16_t* p = static_cast<uint16_t*>(t.raw());
      const float inv = 1.0f / static_cast<float>(n);
      for (int64_t i = 0; i < m; ++i) p[i] = f32_to_bf16_bits(bf16_bits_to_f32(p[i]) * inv);
      break;
    }
    case DType::I32: {
      int32_t* p = t.data<int32_t>();
      for (int64_t i = 0; i < m; ++i) p[i] /= n;
      break;
    }
    case DType::I64: {
      int64_t* p = t.data<int64_t>();
      for (int64_t i = 0; i < m; ++i) p[i] /= n;
      break;
    }
    default:
      RAE_THROW("avg of ", dtype_name(t.dtype()), " is not supported");
  }
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const char* a0 = static_cast<const char*>(a.raw());
  const char* b0 = static_cast<const char*>(b.raw());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// Collective arguments in host memory: CUDA tensors are staged (this MPI is not assumed to be
// CUDA-aware). Inputs are copied to the host when the collective is issued (the copy waits for
// the work queued on the device), outputs copied back when it completes.
struct Staged {
  Tensor arg, host;
};
Staged stage_input(const Tensor& t) {
  return {t, t.is_cuda() ? t.to(Device::cpu()) : t};
}
Staged stage_output(const Tensor& t) {
  return {t, t.is_cuda() ? Tensor::empty(t.shape(), t.dtype()) : t};
}
void unstage(Staged& s) {
  if (s.arg.is_cuda()) s.arg.copy_from(s.host);
}

// MPI arguments may be CPU tensors or CUDA tensors (staged through the host).
void check_mpi_tensor(const Tensor& t, const char* what, const char* arg, const Communicator& c) {
  check_collective_tensor(t, t.defined() && t.is_cuda() ? t.device() : Device::cpu(), what, arg, c);
}

class MpiWork : public WorkImpl {
 public:
  MpiWork(watchdog::CollectiveInfo info, std::vector<Tensor> keep, std::function<void()> finish)
      : info_(info), keep_(std::move(keep)), finish_(std::move(finish)) {
    watchdog::note_issued(info_);
  }
  ~MpiWork() override {
    if (!done_) wait();  // a dropped handle must not leave MPI writing into freed memory
  }
  MPI_Request* request() { return &req_; }

  bool test() override {
    if (done_) return true;
    int flag = 0;
    mpi_check(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    if (flag) {
      done_ = true;
      if (finish_) finish_();
      keep_.clear();
      watchdog::note_completed(info_);
    }
    return done_;
  }
  void wait() override {
    if (!done_) watchdog::wait_until([this] { return test(); }, info_);
  }

 private:
  watchdog::CollectiveInfo info_;
  std::vector<Tensor> keep_;
  std::function<void()> finish_;
  MPI_Request req_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

// The node progress board lives in a shared window over the real shared-memory node.
struct Board {
  MPI_Win win = MPI_WIN_NULL;
  MPI_Comm shm = MPI_COMM_NULL;
};
Board g_board;
bool g_world_created = false;

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, const std::string& label, int node_id,
                                 int physical_node_id)
    : comm_(comm), node_id_(node_id), physical_node_id_(physical_node_id) {
  label_ = label;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm_, &rank);
  MPI_Comm_size(comm_, &size);
  std::vector<int> mine = {node_id, physical_node_id}, all(2 * size);
  mpi_check(MPI_Allgather(mine.data(), 2, MPI_INT, all.data(), 2, MPI_INT, comm_),
            "MPI_Allgather(node ids)");
  std::vector<int> ids(size), phys(size);
  for (int r = 0; r < size; ++r) {
    ids[r] = all[2 * r];
    phys[r] = all[2 * r + 1];
  }
  topo_ = topology_from_node_ids(ids, rank, phys);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::create_world(const DistOptions& opts) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
  }
  watchdog::set_timeout(opts.timeout_s);
  watchdog::set_abort_function([](int code) { MPI_Abort(MPI_COMM_WORLD, code); });

  MPI_Comm world;
  mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup");
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  log::set_rank(size > 1 ? rank : -1);

  // The real node: ranks sharing memory. Its id is the lowest world rank in it.
  MPI_Comm shm;
  mpi_check(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm),
            "MPI_Comm_split_type(SHARED)");
  int physical_id = rank;
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, &physical_id, 1, MPI_INT, MPI_MIN, shm),
            "MPI_Allreduce(node id)");
  int node_id = physical_id;
  if (opts.node_size > 0) {
    RAE_CHECK(size % opts.node_size == 0, "dist node size ", opts.node_size,
              " does not divide the world size ", size, " (rank ", rank, ")");
    node_id = (rank / opts.node_size) * opts.node_size;
  }

  // Progress board (once per process; a second world communicator reuses it).
  if (!g_world_created) {
    int shm_rank = 0, shm_size = 1;
    MPI_Comm_rank(shm, &shm_rank);
    MPI_Comm_size(shm, &shm_size);
    void* base = nullptr;
    mpi_check(MPI_Win_allocate_shared(static_cast<MPI_Aint>(watchdog::slot_bytes()), 1,
                                      MPI_INFO_NULL, shm, &base, &g_board.win),
              "MPI_Win_allocate_shared(progress board)");
    std::memset(base, 0, watchdog::slot_bytes());
    MPI_Aint seg = 0;
    int disp = 0;
    void* base0 = nullptr;
    mpi_check(MPI_Win_shared_query(g_board.win, 0, &seg, &disp, &base0), "MPI_Win_shared_query");
    std::vector<int> world_ranks(shm_size);
    mpi_check(MPI_Allgather(&rank, 1, MPI_INT, world_ranks.data(), 1, MPI_INT, shm),
              "MPI_Allgather(board ranks)");
    mpi_check(MPI_Barrier(shm), "MPI_Barrier(board)");  // all slots zeroed before first use
    watchdog::attach_board(base0, shm_size, shm_rank, world_ranks);
    g_board.shm = shm;
    g_world_created = true;
  } else {
    MPI_Comm_free(&shm);
  }

  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(world, "world", node_id, physical_id));
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split_mpi(int color, int key,
                                                            const std::string& label) {
  MPI_Comm sub;
  mpi_check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(sub, label, node_id_, physical_node_id_));
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key, const std::string& label) {
  return split_mpi(color, key, label);
}

Work MpiCommunicator::all_reduce_async(const Tensor& t, ReduceOp op) {
  check_mpi_tensor(t, "all_reduce", "tensor", *this);
  RAE_CHECK(dtype_reducible(t.dtype()), label_, ".all_reduce: cannot reduce ",
            dtype_name(t.dtype()));
  watchdog::CollectiveInfo info{label_.c_str(), CollectiveKind::AllReduce,
                                next_seq(),     static_cast<int64_t>(t.nbytes()),
                                t.dtype(),      rank(),
                                size()};
  Staged st = stage_input(t);
  std::function<void()> finish = [st, avg = op == ReduceOp::Avg && size() > 1,
                                  n = size()]() mutable {
    if (avg) scale_by_inverse(st.host, n);
    unstage(st);
  };
  auto w = std::make_shared<MpiWork>(info, std::vector<Tensor>{t, st.host}, std::move(finish));
  mpi_check(MPI_Iallreduce(MPI_IN_PLACE, st.host.raw(), mpi_count(t.numel(), *this, "all_reduce"),
                           mpi_type(t.dtype()), mpi_sum(t.dtype()), comm_, w->request()),
            "MPI_Iallreduce");
  return Work(w);
}

Work MpiCommunicator::reduce_scatter_async(const Tensor& in, const Tensor& out, ReduceOp op) {
  check_mpi_tensor(in, "reduce_scatter", "input", *this);
  check_mpi_tensor(out, "reduce_scatter", "output", *this);
  RAE_CHECK(in.dtype() == out.dtype(), label_, ".reduce_scatter: dtypes differ (",
            dtype_name(in.dtype()), " vs ", dtype_name(out.dtype()), ")");
  RAE_CHECK(dtype_reducible(in.dtype()), label_, ".reduce_scatter: cannot reduce ",
            dtype_name(in.dtype()));
  RAE_CHECK(in.numel() == out.numel() * size(), label_, ".reduce_scatter: input has ", in.numel(),
            " elements, expected ", size(), " x ", out.numel(), " (rank ", rank(), ")");
  watchdog::CollectiveInfo info{label_.c_str(), CollectiveKind::ReduceScatter,
                                next_seq(),     static_cast<int64_t>(in.nbytes()),
                                in.dtype(),     rank(),
                                size()};
  Staged sin = stage_input(in), sout = stage_output(out);
  // MPI's in-place form has other semantics than NCCL's; stage an overlapping output instead.
  Tensor target =
      overlaps(sin.host, sout.host) ? Tensor::empty(out.shape(), out.dtype()) : sout.host;
  std::function<void()> finish = [target, sout, op, n = size()]() mutable {
    if (op == ReduceOp::Avg && n > 1) scale_by_inverse(target, n);
    if (target.raw() != sout.host.raw()) sout.host.copy_from(target);
    unstage(sout);
  };
  auto w = std::make_shared<MpiWork>(info, std::vector<Tensor>{in, out, sin.host, target},
                                     std::move(finish));
  mpi_check(MPI_Ireduce_scatter_block(
                sin.host.raw(), target.raw(), mpi_count(out.numel(), *this, "reduce_scatter"),
                mpi_type(in.dtype()), mpi_sum(in.dtype()), comm_, w->request()),
            "MPI_Ireduce_scatter_block");
  return Work(w);
}

Work MpiCommunicator::all_gather_async(const Tensor& in, const Tensor& out) {
  check_mpi_tensor(in, "all_gather", "input", *this);
  check_mpi_tensor(out, "all_gather", "output", *this);
  RAE_CHECK(in.dtype() == out.dtype(), label_, ".all_gather: dtypes differ (",
            dtype_name(in.dtype()), " vs ", dtype_name(out.dtype()), ")");
  RAE_CHECK(out.numel() == in.numel() * size(), label_, ".all_gather: output has ", out.numel(),
            " elements, expected ", size(), " x ", in.numel(), " (rank ", rank(), ")");
  const char* own_chunk = static_cast<const char*>(out.raw()) + rank() * in.nbytes();
  const bool in_place = in.raw() == own_chunk && in.device() == out.device();
  RAE_CHECK(in_place || in.device() != out.device() || !overlaps(in, out), label_,
            ".all_gather: input overlaps the output but is not this rank's chunk");
  watchdog::CollectiveInfo info{label_.c_str(), CollectiveKind::AllGather,
                                next_seq(),     static_cast<int64_t>(out.nbytes()),
                                in.dtype(),     rank(),
                                size()};
  Staged sin = stage_input(in), sout = stage_output(out);
  const bool mpi_in_place = in_place && !out.is_cuda();  // staged copies are separate buffers
  std::function<void()> finish = [sout]() mutable { unstage(sout); };
  auto w = std::make_shared<MpiWork>(info, std::vector<Tensor>{in, out, sin.host, sout.host},
                                     std::move(finish));
  int count = mpi_count(in.numel(), *this, "all_gather");
  MPI_Datatype type = mpi_type(in.dtype());
  mpi_check(MPI_Iallgather(mpi_in_place ? MPI_IN_PLACE : sin.host.raw(), count, type,
                           sout.host.raw(), count, type, comm_, w->request()),
            "MPI_Iallgather");
  return Work(w);
}

Work MpiCommunicator::broadcast_async(const Tensor& t, int root) {
  check_mpi_tensor(t, "broadcast", "tensor", *this);
  RAE_CHECK(root >= 0 && root < size(), label_, ".broadcast: root ", root, " outside 0..",
            size() - 1);
  watchdog::CollectiveInfo info{label_.c_str(), CollectiveKind::Broadcast,
                                next_seq(),     static_cast<int64_t>(t.nbytes()),
                                t.dtype(),      rank(),
                                size()};
  Staged st = stage_input(t);
  std::function<void()> finish = [st]() mutable { unstage(st); };
  auto w = std::make_shared<MpiWork>(info, std::vector<Tensor>{t, st.host}, std::move(finish));
  mpi_check(MPI_Ibcast(st.host.raw(), mpi_count(t.numel(), *this, "broadcast"), mpi_type(t.dtype()),
                       root, comm_, w->request()),
            "MPI_Ibcast");
  return Work(w);
}

Work MpiCommunicator::barrier_async() {
  watchdog::CollectiveInfo info{
      label_.c_str(), CollectiveKind::Barrier, next_seq(), 0, DType::U8, rank(), size()};
  auto w = std::make_shared<MpiWork>(info, std::vector<Tensor>{}, nullptr);
  mpi_check(MPI_Ibarrier(comm_, w->request()), "MPI_Ibarrier");
  return Work(w);
}

void MpiCommunicator::send_bytes(const void* data, size_t bytes, int dest, int tag) {
  RAE_CHECK(bytes <= INT_MAX, label_, ".send: ", bytes, " bytes exceed the MPI count limit");
  RAE_CHECK(dest >= 0 && dest < size(), label_, ".send: destination ", dest, " outside 0..",
            size() - 1);
  watchdog::CollectiveInfo info{label_.c_str(), CollectiveKind::Send,
                                next_seq(),     static_cast<int64_t>(bytes),
                                DType::U8,      rank(),
                                size()};
  MPI_Request req = MPI_REQUEST_NULL;
  watchdog::note_issued(info);
  mpi_check(
      MPI_Isend(const_cast<void*>(data), static_cast<int>(bytes), MPI_BYTE, dest, tag, comm_, &req),
      "MPI_Isend");
  watchdog::wait_until(
      [&] {
        int done = 0;
        mpi_check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        return done != 0;
      },
      info);
  watchdog::note_completed(info);
}

std::vector<char> MpiCommunicator::recv_bytes(int tag, int source, int* from) {
  watchdog::CollectiveInfo info{
      label_.c_str(), CollectiveKind::Recv, next_seq(), 0, DType::U8, rank(), size()};
  MPI_Message msg = MPI_MESSAGE_NULL;
  MPI_Status st;
  watchdog::note_issued(info);
  watchdog::wait_until(
      [&] {
        int found = 0;
        mpi_check(MPI_Improbe(source < 0 ? MPI_ANY_SOURCE : source, tag, comm_, &found, &msg, &st),
                  "MPI_Improbe");
        return found != 0;
      },
      info);
  int count = 0;
  mpi_check(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count");
  std::vector<char> buf(static_cast<size_t>(count));
  mpi_check(MPI_Mrecv(buf.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
  watchdog::note_completed(info);
  if (from) *from = st.MPI_SOURCE;
  return buf;
}

bool launched_with_several_ranks() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    if (const char* s = std::getenv(v)) return std::atoi(s) > 1;
  }
  return false;
}

void finalize(Communicator& world) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  world.barrier();  // guarded: a missing rank aborts the job instead of hanging in MPI_Finalize
  watchdog::detach_board();
  if (g_board.win != MPI_WIN_NULL) MPI_Win_free(&g_board.win);
  if (g_board.shm != MPI_COMM_NULL) MPI_Comm_free(&g_board.shm);
  MPI_Finalize();
}

void abort_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace rae::distributed
