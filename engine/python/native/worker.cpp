#include "native/worker.hpp"

#include "native/python_tasks.hpp"

#include "trellis/cli_main.hpp"

#include <pybind11/stl.h>

#include <csignal>
#include <string>
#include <vector>

namespace py = pybind11;

namespace trellis::python {

void bind_worker(py::module_& m) {
  m.def(
      "worker_main",
      [](std::vector<std::string> argv, const python_registry& tasks) {
        std::vector<char*> args;
        args.reserve(argv.size() + 1);
        for (auto& arg : argv) {
          args.push_back(arg.data());
        }
        args.push_back(nullptr);
        auto registry = tasks.tasks;
        // worker_main blocks SIGTERM and SIGINT in this thread to wait for
        // them itself; Python's own handling comes back afterwards.
        sigset_t before;
        pthread_sigmask(SIG_SETMASK, nullptr, &before);
        int code = 0;
        {
          // The worker's threads run the Python tasks: they need the GIL.
          py::gil_scoped_release release;
          code = worker_main(static_cast<int>(argv.size()), args.data(), std::move(registry));
        }
        pthread_sigmask(SIG_SETMASK, &before, nullptr);
        return code;
      },
      py::arg("argv"), py::arg("tasks"),
      "Runs a cluster worker (`worker` flags in argv[1:]) until SIGTERM or SIGINT; returns the exit code.");
}

}  // namespace trellis::python
