#include "train/dist_session.h"

#include <sys/resource.h>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "distributed/consistency.h"
#include "distributed/nccl_communicator.h"

namespace rae::train {

std::unique_ptr<DistSession> DistSession::create(const TrainConfig& cfg,
                                                 const std::string& config_text) {
  if (!distributed::launched_with_several_ranks()) return nullptr;
  std::unique_ptr<DistSession> s(new DistSession);
  distributed::DistOptions d;
  d.timeout_s = cfg.timeout_s;
  d.node_size = static_cast<int>(cfg.node_size);
  s->world_ = distributed::MpiCommunicator::create_world(d);
  distributed::check_consistency(*s->world_, config_text);
  const bool cuda = parse_device(cfg.device).is_cuda();
  const bool nccl = cuda && (cfg.backend == "nccl" || cfg.backend == "auto");
  RAE_CHECK(cfg.backend != "nccl" || cuda, "dist.backend = nccl needs train.device = cuda");
  if (nccl) {
    RAE_CHECK(distributed::nccl_compiled(), "train.device = ", cfg.device,
              " under mpirun needs a CUDA build with NCCL (or dist.backend = mpi)");
    s->nccl_ = distributed::make_nccl_communicator(*s->world_);
  }
  if (s->world_->rank() == 0)
    log::info("distributed: ", s->world_->size(), " ranks, ", s->world_->num_nodes(),
              " node(s) of ", s->world_->local_size(), ", ", s->comm().backend(),
              " collectives, watchdog timeout ", cfg.timeout_s, " s");
  return s;
}

DistSession::~DistSession() = default;

void DistSession::finish() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  log::info("measured peak resident memory ", static_cast<double>(ru.ru_maxrss) / 1024.0, " MiB");
  nccl_.reset();
  distributed::finalize(*world_);
}

}  // namespace rae::train
