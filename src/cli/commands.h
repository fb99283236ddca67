// Subcommands of the `rae` executable. Each lives in its own cmd_<name>.cpp and receives the
// arguments after its name (argv[0] is the subcommand name).
#pragma once

namespace rae::cli {

int cmd_train(int argc, char** argv);
int cmd_decoder_train(int argc, char** argv);
int cmd_synth_cache(int argc, char** argv);
int cmd_cache(int argc, char** argv);
int cmd_make_dataset(int argc, char** argv);
int cmd_model_forward(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_decode(int argc, char** argv);
int cmd_reconstruct(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_eval_agreement(int argc, char** argv);  // rae eval agreement
int cmd_status(int argc, char** argv);

}  // namespace rae::cli
