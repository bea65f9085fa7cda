// The moewb subcommands. Each takes the arguments after its name, prints its result
// on stdout and returns the process exit code; errors are thrown as moe::Error and
// turned into exit codes (2 input, 1 failure) by main.
#pragma once

namespace moewb {

int cmd_info(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_make_random(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_trace(int argc, char** argv);
int cmd_stats(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_ablate(int argc, char** argv);
int cmd_capture(int argc, char** argv);
int cmd_import(int argc, char** argv);
int cmd_delete_run(int argc, char** argv);
int cmd_delete_ablation(int argc, char** argv);

}  // namespace moewb
