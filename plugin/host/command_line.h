// CheckCommandLine: checks a program's command line against its Abseil flags before
// absl::ParseCommandLine sees it. ParseCommandLine exits with status 1 by itself on an unknown
// flag, a missing value or one that does not parse; derma's programs exit 2 on every start-up
// error, so they check first and report the problem themselves. Layer: plugin/host.
// Thread-compatible (reads the process's flag registry; sets the flags it checks).
#ifndef DERMA_PLUGIN_HOST_COMMAND_LINE_H_
#define DERMA_PLUGIN_HOST_COMMAND_LINE_H_

#include "absl/status/status.h"

namespace derma::host {

// OK when absl::ParseCommandLine(argc, argv) will accept the command line. Otherwise
// INVALID_ARGUMENT naming the argument: an unknown flag (--nosuch), a flag without its value,
// a value that does not parse as the flag's type, or a positional argument (derma's programs
// take none). Flags given as --name=value, --name value, -name=value and --noname for booleans.
absl::Status CheckCommandLine(int argc, char** argv);

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_COMMAND_LINE_H_
