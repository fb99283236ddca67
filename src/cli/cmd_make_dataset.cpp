#include "cli/commands.h"
#include "core/error.h"

namespace rae::cli {

int cmd_make_dataset(int, char**) { RAE_THROW("not implemented yet"); }

}  // namespace rae::cli
