#include "plugin/core/emergency_stop_times.h"

namespace derma {

const char* StopScopeLabel(StopScope scope) { return scope == StopScope::kAll ? "all" : "device"; }

}  // namespace derma
