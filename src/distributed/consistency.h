// Start-up consistency check: every rank must run the same build with the same configuration.
// Each rank hashes (XXH64, core/checksum.h) its canonical config text and its build id; the hashes
// are all-gathered and a mismatch throws on every rank (so none is left waiting) with a message
// naming the ranks.
#pragma once
#include <cstdint>
#include <string>

#include "distributed/communicator.h"

namespace rae::distributed {

// "git <describe> | <compiler> | cuda on/off": the commit comes from configure time.
std::string build_id();

void check_consistency(Communicator& comm, const std::string& config_text,
                       const std::string& build = build_id());

}  // namespace rae::distributed
