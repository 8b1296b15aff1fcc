#ifndef HYBRID_ROUTER_TOOLS_LOAD_LIB_H_
#define HYBRID_ROUTER_TOOLS_LOAD_LIB_H_

// The parts of hr-load that do not talk to the network: the workload, the request
// sampler, the arrival schedule, the independent residency check and the report.

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "hybridrouter/v1/config.pb.h"
#include "hybridrouter/v1/router.pb.h"
#include "load.pb.h"

namespace hr::load {

namespace v1 = ::hybridrouter::v1;
namespace tools = ::hybridrouter::tools;

// A workload file with its prompts read.
struct Workload {
  tools::LoadWorkload spec;
  std::vector<std::string> prompts;
};

// Parses a workload (textproto) and reads its prompts file; `path` names the file
// in errors and anchors a relative prompts_file. InvalidArgument naming the line
// or field for a bad file; NotFound for a missing one.
absl::StatusOr<Workload> ParseWorkload(absl::string_view text, const std::string& path);
absl::StatusOr<Workload> LoadWorkloadFile(const std::string& path);

// One JSONL line {"prompt": ...} (other fields ignored): its prompt, or
// InvalidArgument when the line is not such an object or the prompt is empty.
// Callers add where the line came from.
absl::StatusOr<std::string> ParsePromptRecord(absl::string_view line);

// Reads prompts: JSONL lines (starting with `{`, a `prompt` field) or plain text
// lines; empty lines are skipped.
absl::StatusOr<std::vector<std::string>> ParsePrompts(absl::string_view text,
                                                      const std::string& path);

// Draws requests from a workload: locale entry by weight, prompt uniformly, from
// a generator seeded with `seed` (the same seed gives the same sequence).
class RequestSampler {
 public:
  RequestSampler(const Workload& workload, uint64_t seed);
  // The next request; its id is `load-<n>` with n counting from 1.
  v1::GenerateRequest Next();

 private:
  const Workload& workload_;
  std::vector<double> cumulative_;  // cumulative weights of workload_.spec.locales()
  std::mt19937_64 gen_;
  int64_t n_ = 0;
};

// Poisson arrivals: exponential gaps with mean 1/rps, seeded.
class ArrivalSchedule {
 public:
  ArrivalSchedule(double rps, uint64_t seed);
  // The gap before the next arrival.
  absl::Duration NextGap();

 private:
  double rps_;
  std::mt19937_64 gen_;
};

// Which cloud regions a locale may be served in, read straight from the policy
// file, independently of the router's own policy code.
class ResidencyOracle {
 public:
  static absl::StatusOr<ResidencyOracle> FromFile(const std::string& path);
  static absl::StatusOr<ResidencyOracle> FromPolicy(const v1::Policy& policy);

  struct Allowance {
    std::string jurisdiction;          // the jurisdiction id, or "default"
    std::vector<std::string> regions;  // empty: local only
    std::string country;               // of the locale; empty when it names none
  };
  // What the policy allows for `locale`. InvalidArgument for a locale that is not
  // a well-formed tag.
  absl::StatusOr<Allowance> Allowed(absl::string_view locale) const;
  const std::string& version() const { return version_; }

 private:
  std::string version_;
  absl::flat_hash_map<std::string, Allowance> by_country_;
  Allowance default_;
};

// What happened to one request.
struct Outcome {
  std::string request_id;
  std::string locale;
  int code = 0;         // grpc::StatusCode, or kProtocolError
  std::string message;  // the status message (never prompt or answer text)
  bool routed = false;  // a route (RouteInfo, or CloudStart) arrived
  bool cloud = false;
  bool fell_back = false;
  std::string region;
  int64_t latency_us = 0;       // from the scheduled start to the end of the call
  int64_t first_chunk_us = -1;  // to the first text chunk; -1 when none
  int64_t completion_tokens = 0;
};

// The stream ended OK but broke the Generate protocol (no route, no done...).
inline constexpr int kProtocolError = -1;

// The exact percentile (nearest rank) summary of `values`.
tools::LatencySummary Summarize(std::vector<int64_t> values);

// Collects outcomes from many threads and builds the report, checking each
// outcome's region against the oracle.
class ReportBuilder {
 public:
  explicit ReportBuilder(const ResidencyOracle* oracle) : oracle_(oracle) {}

  void Add(const Outcome& outcome);
  void AddLateStart();

  struct Progress {
    int64_t done = 0;
    int64_t ok = 0;
    int64_t failed = 0;
    int64_t violations = 0;
  };
  Progress progress() const;

  // The report over everything added; `duration` is the run's wall time.
  tools::LoadReport Build(absl::Duration duration) const;

 private:
  struct Group {
    int64_t requests = 0;
    int64_t ok = 0;
    int64_t completion_tokens = 0;
    std::vector<int64_t> latency;
    std::vector<int64_t> first_chunk;
  };
  struct StatusCount {
    int64_t count = 0;
    std::string example;
    std::vector<int64_t> latency;
  };

  const ResidencyOracle* oracle_;
  mutable absl::Mutex mu_;
  Group all_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Group> routes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, StatusCount> statuses_ ABSL_GUARDED_BY(mu_);
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t late_starts_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t violations_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<tools::Violation> violation_examples_ ABSL_GUARDED_BY(mu_);
};

// The route an outcome is grouped under: `local`, `local-fallback`,
// `cloud/REGION` or `none`.
std::string RouteName(const Outcome& outcome);

// The name of a status code (`OK`, `UNAVAILABLE`, ..., `PROTOCOL`).
std::string CodeName(int code);

// The report as a table for people.
std::string FormatReport(const tools::LoadReport& report);

}  // namespace hr::load

#endif  // HYBRID_ROUTER_TOOLS_LOAD_LIB_H_
