#include "cli/commands.h"
#include "core/error.h"

namespace rae::cli {

int cmd_cache(int, char**) { RAE_THROW("not implemented yet"); }

}  // namespace rae::cli
