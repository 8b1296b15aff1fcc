#ifndef HYBRID_ROUTER_UTIL_FLAGS_H_
#define HYBRID_ROUTER_UTIL_FLAGS_H_

#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace hr::util {

// Makes --help list the program's own flags. By default Abseil lists only flags
// defined in a file named like the program (hrctl.cc for hrctl), which leaves
// hr-device (device_stub/main.cc) and most others with none. Abseil's own flags
// (--flagfile, --fromenv...) stay in --helpfull. Call before ParseCommandLine.
inline void ListOwnFlagsInHelp() {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view path) {
    return !absl::StrContains(path, "absl/");
  };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_FLAGS_H_
