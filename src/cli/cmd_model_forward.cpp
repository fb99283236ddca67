#include "cli/commands.h"
#include "core/error.h"

namespace rae::cli {

int cmd_model_forward(int, char**) { RAE_THROW("not implemented yet"); }

}  // namespace rae::cli
