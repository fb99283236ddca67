#include "distributed/consistency.h"

#include <map>
#include <sstream>
#include <vector>

#include "core/checksum.h"
#include "core/error.h"

#ifndef RAE_GIT_DESCRIBE
#define RAE_GIT_DESCRIBE "unknown"
#endif

namespace rae::distributed {

std::string build_id() {
  std::ostringstream os;
  os << "git " << RAE_GIT_DESCRIBE << " | ";
#if defined(__clang__)
  os << "clang " << __clang_major__ << "." << __clang_minor__;
#elif defined(__GNUC__)
  os << "gcc " << __GNUC__ << "." << __GNUC_MINOR__;
#endif
#ifdef RAE_WITH_CUDA
  os << " | cuda on";
#else
  os << " | cuda off";
#endif
  return os.str();
}

namespace {

// "ranks 0,2 have 0x..; ranks 1 have 0x.." for a list of per-rank values.
std::string groups(const std::vector<uint64_t>& values) {
  std::map<uint64_t, std::vector<int>> by_value;
  for (size_t r = 0; r < values.size(); ++r) by_value[values[r]].push_back(static_cast<int>(r));
  std::ostringstream os;
  bool first_group = true;
  for (auto& [v, ranks] : by_value) {
    if (!first_group) os << "; ";
    first_group = false;
    os << (ranks.size() == 1 ? "rank " : "ranks ");
    for (size_t i = 0; i < ranks.size(); ++i) os << (i ? "," : "") << ranks[i];
    os << " have 0x" << std::hex << v << std::dec;
  }
  return os.str();
}

}  // namespace

void check_consistency(Communicator& comm, const std::string& config_text,
                       const std::string& build) {
  Tensor mine = Tensor::empty({2}, DType::I64);
  mine.data<int64_t>()[0] = static_cast<int64_t>(xxh64(config_text));
  mine.data<int64_t>()[1] = static_cast<int64_t>(xxh64(build));
  Tensor all = Tensor::empty({2 * comm.size()}, DType::I64, comm.device());
  Tensor in = mine.to(comm.device());
  comm.all_gather_async(in, all).synchronize();
  Tensor host = all.to(Device::cpu());
  std::vector<uint64_t> config(comm.size()), builds(comm.size());
  for (int r = 0; r < comm.size(); ++r) {
    config[r] = static_cast<uint64_t>(host.data<int64_t>()[2 * r]);
    builds[r] = static_cast<uint64_t>(host.data<int64_t>()[2 * r + 1]);
  }
  std::string problems;
  for (int r = 1; r < comm.size(); ++r) {
    if (builds[r] != builds[0]) {
      problems += "ranks run different builds (" + groups(builds) + "; this rank " +
                  std::to_string(comm.rank()) + " runs '" + build + "'). ";
      break;
    }
  }
  for (int r = 1; r < comm.size(); ++r) {
    if (config[r] != config[0]) {
      problems += "ranks have different configurations (config hash: " + groups(config) + ").";
      break;
    }
  }
  RAE_CHECK(problems.empty(), "start-up consistency check failed on ", comm.label(), ": ",
            problems);
}

}  // namespace rae::distributed
