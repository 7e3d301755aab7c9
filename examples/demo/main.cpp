// trellis-demo: the demo tasks registered into the Trellis command line.
// `trellis-demo run examples/order_pipeline.json` runs a workflow embedded.

#include "demo_tasks.hpp"

int main(int argc, char** argv) {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  return trellis::cli_main(argc, argv, std::move(tasks));
}
