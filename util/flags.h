#ifndef HYBRID_ROUTER_UTIL_FLAGS_H_
#define HYBRID_ROUTER_UTIL_FLAGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
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

// Collects what is wrong with a program's flags, so that it names every problem
// at once and exits before it starts anything:
//   FlagChecks check;
//   check.Require(threads >= 1, "--threads must be at least 1");
//   if (!check.ok()) { for (auto& p : check.problems()) log(p); return 2; }
class FlagChecks {
 public:
  void Require(bool ok, std::string problem) {
    if (!ok) problems_.push_back(std::move(problem));
  }
  // A check written elsewhere: its message is the problem.
  void Require(const absl::Status& status) {
    if (!status.ok()) problems_.emplace_back(status.message());
  }
  bool ok() const { return problems_.empty(); }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// --tls_cert_file and --tls_key_file, as hr-cloud and hr-load take them: a
// certificate chain and its private key, both or neither.
inline absl::Status CheckCertificateAndKeyFlags(absl::string_view cert_file,
                                                absl::string_view key_file) {
  if (cert_file.empty() == key_file.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "--tls_cert_file and --tls_key_file go together: give both or neither");
}

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_FLAGS_H_
