#ifndef HYBRID_ROUTER_UTIL_FLAGS_H_
#define HYBRID_ROUTER_UTIL_FLAGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hr::util {

// Parses the command line as absl::ParseCommandLine does and returns the
// arguments that are not flags (the program's name first), after setting `usage`
// as the program's usage message. Except: --help and -h print the usage and the
// program's own flags (not Abseil's --flagfile, --fromenv...), --helpfull all
// flags, and --help=TEXT the flags whose name, help or file contains TEXT, to
// stdout, and exit 0 (Abseil exits 1 and knows no -h); --version prints the
// program's name, Version() and how it was built, and exits 0 (Abseil's says
// "Debug build" of every binary, from how Debian built Abseil).
std::vector<char*> ParseCommandLine(int argc, char** argv, absl::string_view usage);

// hybrid-router's version (CMake's project version), as --version and the
// servers' start-up log line give it.
absl::string_view Version();

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
  // A count of threads, or of slots (a thread each), as --`name` gives it: 1 to
  // kMaxThreads. Far more than a machine can start would end the program with
  // an exception when it starts them, rather than with a word on the flag.
  void RequireThreads(absl::string_view name, int value) {
    Require(value >= 1 && value <= kMaxThreads,
            absl::StrCat("--", name, " must be 1 to ", kMaxThreads, ", not ", value));
  }
  static constexpr int kMaxThreads = 1024;

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
