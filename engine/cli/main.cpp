// `trellis`: the generic command line, with no task handlers of its own. It
// reads stores and dead letters; running workflows needs a binary that
// registers handlers (see examples/demo for `trellis-demo`).

#include "trellis/cli_main.hpp"

int main(int argc, char** argv) { return trellis::cli_main(argc, argv, trellis::task_registry{}); }
