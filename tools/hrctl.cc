// hrctl: the operator's and app developer's command-line tool for hybrid-router.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "demo_cases.pb.h"
#include "device_stub/cloud_client.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc_util/server_util.h"
#include "grpcpp/grpcpp.h"
#include "hybridrouter/v1/router.grpc.pb.h"
#include "load_lib.h"
#include "policy/residency_policy.h"
#include "router/classifier.h"
#include "router/complexity_model.h"
#include "util/flags.h"
#include "util/text_proto.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "the device router (hr-device) to talk to");
ABSL_FLAG(std::string, policy, "deploy/local/policy.textproto", "policy file (validate, probe)");
ABSL_FLAG(std::string, backends, "deploy/local/backends.textproto",
          "backends file (validate, probe)");
ABSL_FLAG(std::string, locale, "en-US", "BCP 47 locale of the request");
ABSL_FLAG(bool, consent, false, "the user consents to cloud processing");
ABSL_FLAG(std::string, hint, "", "prefer 'local' or 'cloud' (empty: let the router decide)");
ABSL_FLAG(std::string, system, "", "an optional system message");
ABSL_FLAG(std::string, prompt_file, "", "read the user message from this file ('-': stdin)");
ABSL_FLAG(int, max_tokens, 0, "answer length (0: the router's default)");
ABSL_FLAG(double, temperature, 0, "sampling temperature (0: greedy)");
ABSL_FLAG(std::string, request_id, "", "request id (empty: the router makes one)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60), "deadline of each call");
ABSL_FLAG(std::string, cases, "deploy/local/demo_cases.textproto", "case list (demo)");
ABSL_FLAG(std::string, complexity_model, "models/complexity.pb",
          "score: the learned model, as hr-device loads it (empty: the heuristic)");
ABSL_FLAG(double, complexity_threshold, -1,
          "score: threshold (-1: the model file's, 0.5 for the heuristic)");
ABSL_FLAG(bool, json, false, "machine-readable output (JSON; one object per line for streams)");

namespace {

namespace v1 = ::hybridrouter::v1;
constexpr char kUsage[] = R"(Inspects and exercises hybrid-router.

Commands:
  hrctl validate [--policy FILE] [--backends FILE] [--json]
      Load and validate the policy and backends files; print problems with file and
      line, or the jurisdictions and warnings. Exit 1 when invalid.
  hrctl probe    [--policy FILE] [--backends FILE] [--timeout 5s] [--json]
      Connect to every backend as hr-device would (TLS settings included) and ask
      its gRPC health service; print each one's state. Exit 1 unless all serve.
  hrctl explain  [--target ADDR] --locale TAG [--consent] [--hint local|cloud] PROMPT
      Ask a running hr-device where the request would run, and why.
  hrctl generate [--target ADDR] --locale TAG [--consent] [--max_tokens N] PROMPT
      Send the request, stream the answer, and print where it ran.
  hrctl demo     [--target ADDR] [--cases FILE]
      Send each case of a case list and print a table of the decisions.
  hrctl score    [--complexity_model FILE] < prompts.jsonl
      For each line {"prompt": ...}: the complexity score, the threshold and the
      decision it implies, computed exactly as hr-device computes them, and which
      scorer gave it: "model", or "heuristic" (no model file, or mostly-CJK text
      that the model was not trained on).
  hrctl detect   < prompts.jsonl
      For each line {"prompt": ...}: the sensitive spans (type, start and end in
      bytes, text).
  score and detect print {"error": "line N: ..."} for a line they cannot read, go on
  with the next, and exit 1 if any line failed.

PROMPT is the remaining arguments joined by spaces (after -- if a word of it starts
with a dash), or --prompt_file.
)";

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// "1 backend", "6 backends".
std::string Count(size_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun, n == 1 ? "" : "s");
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

int Fail(const grpc::Status& s) {
  std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("{\"error\":{\"code\":%s,\"message\":%s}}\n", JsonString(code).c_str(),
                JsonString(s.error_message()).c_str());
  } else {
    std::fprintf(stderr, "error: %s: %s\n", code.c_str(), s.error_message().c_str());
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
        absl::StrContains(s.error_message(), "failed to connect")) {
      std::fprintf(stderr, "no hr-device answered at %s; is it running there (--target)?\n",
                   absl::GetFlag(FLAGS_target).c_str());
    }
  }
  return 1;
}

absl::StatusOr<v1::GenerateRequest> BuildRequest(const std::vector<char*>& args) {
  v1::GenerateRequest r;
  r.set_request_id(absl::GetFlag(FLAGS_request_id));
  r.set_locale(absl::GetFlag(FLAGS_locale));
  r.set_cloud_consent(absl::GetFlag(FLAGS_consent));
  std::string hint = absl::GetFlag(FLAGS_hint);
  if (hint == "local") {
    r.set_hint(v1::PREFER_LOCAL);
  } else if (hint == "cloud") {
    r.set_hint(v1::PREFER_CLOUD);
  } else if (!hint.empty()) {
    return absl::InvalidArgumentError("--hint must be local or cloud");
  }
  if (!absl::GetFlag(FLAGS_system).empty()) {
    auto* m = r.add_messages();
    m->set_role("system");
    m->set_content(absl::GetFlag(FLAGS_system));
  }
  std::string prompt;
  std::string file = absl::GetFlag(FLAGS_prompt_file);
  if (!file.empty()) {
    if (file == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      prompt = ss.str();
    } else {
      absl::StatusOr<std::string> text = hr::util::ReadFile(file);
      if (!text.ok()) return text.status();
      prompt = *std::move(text);
    }
  } else {
    if (args.size() < 3) {
      return absl::InvalidArgumentError(
          "no prompt: give it as the remaining arguments or with --prompt_file");
    }
    prompt = absl::StrJoin(args.begin() + 2, args.end(), " ");
  }
  auto* m = r.add_messages();
  m->set_role("user");
  m->set_content(prompt);
  r.mutable_options()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  r.mutable_options()->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  return r;
}

std::unique_ptr<v1::Router::Stub> Connect() {
  return v1::Router::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
}

std::string Categories(const google::protobuf::RepeatedPtrField<v1::Redaction>& rs) {
  std::vector<std::string> parts;
  for (const auto& r : rs) {
    parts.push_back(absl::StrCat(v1::SensitiveCategory_Name(r.category()), "x", r.count()));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

std::string Where(const v1::RouteInfo& info) {
  if (info.target() == v1::CLOUD) {
    // Explain decides the route but picks no backend: that happens when one serves.
    if (info.backend().empty()) return "any-allowed-region";
    return absl::StrCat(info.region(), "/", info.backend());
  }
  if (info.target() == v1::LOCAL) return info.fell_back() ? "device (fallback)" : "device";
  return "-";
}

void PrintRoute(const v1::RouteInfo& info) {
  std::printf("route: %s where=%s jurisdiction=%s allowed=[%s] policy=%s\n",
              v1::ExecutionTarget_Name(info.target()).c_str(), Where(info).c_str(),
              info.jurisdiction().c_str(), absl::StrJoin(info.allowed_regions(), ",").c_str(),
              info.policy_version().c_str());
  std::printf("  complexity=%.3f threshold=%.3f detected=%s redacted=%s\n",
              info.complexity_score(), info.complexity_threshold(),
              Categories(info.detected()).c_str(), Categories(info.redactions()).c_str());
  for (int i = 0; i < info.rule_ids_size(); ++i) {
    std::printf("  rule %s: %s\n", info.rule_ids(i).c_str(),
                i < info.reasons_size() ? info.reasons(i).c_str() : "");
  }
}

int Validate() {
  auto policy = hr::policy::LoadResidencyPolicy(absl::GetFlag(FLAGS_policy),
                                                absl::GetFlag(FLAGS_backends));
  bool json = absl::GetFlag(FLAGS_json);
  if (!policy.ok()) {
    if (json) {
      std::printf("{\"ok\":false,\"error\":%s}\n", JsonString(policy.status().message()).c_str());
    } else {
      std::fprintf(stderr, "%s\n", std::string(policy.status().message()).c_str());
    }
    return 1;
  }
  const auto& p = **policy;
  if (json) {
    std::vector<std::string> warnings, rules;
    for (const auto& w : p.warnings()) warnings.push_back(JsonString(w));
    for (const auto& r : p.rules()) rules.push_back(JsonString(r.id));
    std::printf("{\"ok\":true,\"version\":%s,\"jurisdictions\":[%s],\"backends\":%d,"
                "\"warnings\":[%s]}\n",
                JsonString(p.version()).c_str(), absl::StrJoin(rules, ",").c_str(),
                p.backends().backends_size(), absl::StrJoin(warnings, ",").c_str());
    return 0;
  }
  std::printf("OK: policy %s, %s, %s\n", p.version().c_str(),
              Count(p.rules().size(), "jurisdiction").c_str(),
              Count(p.backends().backends_size(), "backend").c_str());
  for (const auto& r : p.rules()) {
    std::printf("  %-8s %s\n", r.id.c_str(),
                r.cloud_allowed ? absl::StrCat("cloud in [", absl::StrJoin(r.allowed_regions, ", "),
                                               "] via ", Count(p.BackendsFor(r).size(), "backend"),
                                               r.consent_required ? ", consent required" : "", ", ",
                                               v1::UnavailableAction_Name(r.when_unavailable))
                                      .c_str()
                                : "local only");
  }
  for (const auto& w : p.warnings()) std::printf("warning: %s\n", w.c_str());
  return 0;
}

// The backends as hr-device sees them: each one's health, asked over a channel
// made exactly as hr-device makes it.
int Probe() {
  auto policy =
      hr::policy::LoadResidencyPolicy(absl::GetFlag(FLAGS_policy), absl::GetFlag(FLAGS_backends));
  if (!policy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(policy.status().message()).c_str());
    return 1;
  }
  const bool json = absl::GetFlag(FLAGS_json);
  int failing = 0;
  for (const v1::Backend& b : (*policy)->backends().backends()) {
    auto channel = hr::device::NewBackendChannel(b);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, request, &response);
    const std::string state =
        s.ok()
            ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            : absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                           ": ", s.error_message());
    const bool serving =
        s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
    failing += !serving;
    const char* transport = b.has_tls() ? "tls" : "plaintext";
    if (json) {
      std::printf(
          "{\"backend\":%s,\"region\":%s,\"address\":%s,\"transport\":\"%s\","
          "\"serving\":%s,\"state\":%s}\n",
          JsonString(b.name()).c_str(), JsonString(b.region()).c_str(),
          JsonString(b.address()).c_str(), transport, serving ? "true" : "false",
          JsonString(state).c_str());
    } else {
      std::printf("%-16s %-14s %-9s %-40s %s\n", b.name().c_str(), b.region().c_str(), transport,
                  b.address().c_str(), state.c_str());
    }
  }
  return failing == 0 ? 0 : 1;
}

int Explain(const v1::GenerateRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RouteInfo info;
  grpc::Status s = Connect()->Explain(&ctx, request, &info);
  if (!s.ok()) return Fail(s);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", ToJson(info).c_str());
  } else {
    PrintRoute(info);
  }
  return 0;
}

// Runs one Generate call; fills `info` and `text`. Prints as it goes unless quiet.
grpc::Status RunGenerate(v1::Router::Stub* stub, const v1::GenerateRequest& request, bool print,
                         v1::RouteInfo* info, std::string* text, v1::Done* done) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse r;
  bool json = absl::GetFlag(FLAGS_json);
  while (reader->Read(&r)) {
    if (print && json) std::printf("%s\n", ToJson(r).c_str());
    // A message's parts in their order: route, text, done.
    if (r.has_route()) {
      *info = r.route();
      if (print && !json) PrintRoute(*info);
    }
    if (r.has_chunk()) {
      text->append(r.chunk().text());
      if (print && !json) {
        std::fputs(r.chunk().text().c_str(), stdout);
        std::fflush(stdout);
      }
    }
    if (r.has_done()) *done = r.done();
  }
  return reader->Finish();
}

int Generate(const v1::GenerateRequest& request) {
  v1::RouteInfo info;
  std::string text;
  v1::Done done;
  grpc::Status s = RunGenerate(Connect().get(), request, true, &info, &text, &done);
  if (!s.ok()) return Fail(s);
  if (!absl::GetFlag(FLAGS_json)) {
    std::printf("\ndone: finish=%s prompt_tokens=%d completion_tokens=%d decision=%.3fms "
                "first_chunk=%.1fms total=%.1fms failed_attempts=%d\n",
                done.finish_reason().c_str(), done.usage().prompt_tokens(),
                done.usage().completion_tokens(), done.timings().decision_micros() / 1e3,
                done.timings().first_chunk_micros() / 1e3, done.timings().total_micros() / 1e3,
                done.timings().failed_attempts());
  }
  return 0;
}

int Demo() {
  const std::string path = absl::GetFlag(FLAGS_cases);
  absl::StatusOr<std::string> text = hr::util::ReadFile(path);
  if (!text.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  hybridrouter::tools::DemoCases cases;
  std::vector<std::string> problems;
  if (!hr::util::ParseConfig(path, *text, &cases, &problems)) {
    std::fprintf(stderr, "error: %s\n", absl::StrJoin(problems, "\nerror: ").c_str());
    return 1;
  }
  auto stub = Connect();
  const char* kRow = "%-28s %-10s %-9s %-28s %-34s %-18s\n";
  std::printf(kRow, "case", "locale", "decision", "where it ran", "rule", "redactions");
  std::printf("%s\n", std::string(132, '-').c_str());
  int failures = 0;
  for (const auto& c : cases.cases()) {
    v1::RouteInfo info;
    std::string text;
    v1::Done done;
    grpc::Status s = RunGenerate(stub.get(), c.request(), false, &info, &text, &done);
    std::string decision, where, rule;
    if (s.ok()) {
      decision = v1::ExecutionTarget_Name(info.target());
      where = Where(info);
      rule = info.rule_ids_size() > 0 ? info.rule_ids(0) : "-";
      if (info.fell_back()) rule = info.rule_ids(info.rule_ids_size() - 1);
    } else {
      decision = "REFUSED";
      where = absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
      rule = s.error_message().substr(0, 34);
    }
    std::printf(kRow, c.label().c_str(), c.request().locale().c_str(), decision.c_str(),
                where.c_str(), rule.c_str(), s.ok() ? Categories(info.redactions()).c_str() : "-");
    if (s.ok() && text.empty() && done.usage().completion_tokens() == 0) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

// Reads {"prompt": ...} lines from stdin and prints one JSON line each; a line
// that is not such a record (or whose prompt is empty) prints {"error": "line N:
// ..."} in its place, and the exit status is then 1.
int ForEachPrompt(const std::function<std::string(const std::string&)>& f) {
  std::string line;
  int errors = 0, lineno = 0;
  while (std::getline(std::cin, line)) {
    ++lineno;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<std::string> prompt = hr::load::ParsePromptRecord(line);
    if (!prompt.ok()) {
      ++errors;
      std::printf(
          "{\"error\":%s}\n",
          JsonString(absl::StrCat("line ", lineno, ": ", prompt.status().message())).c_str());
      continue;
    }
    std::printf("%s\n", f(*prompt).c_str());
  }
  return errors == 0 ? 0 : 1;
}

int Score() {
  auto complexity = hr::router::LoadComplexityConfig(absl::GetFlag(FLAGS_complexity_model),
                                                     absl::GetFlag(FLAGS_complexity_threshold));
  if (!complexity.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(complexity.status().message()).c_str());
    return 1;
  }
  const double threshold = complexity->threshold;
  hr::router::Classifier classifier(complexity->model.get());
  return ForEachPrompt([&](const std::string& prompt) {
    const hr::router::Classification c = classifier.Classify({{"user", prompt}});
    const bool heuristic = complexity->model == nullptr || c.complexity_by_heuristic_fallback;
    return absl::StrFormat(
        "{\"score\":%.6f,\"threshold\":%.6f,\"decision\":\"%s\",\"scorer\":\"%s\"}", c.complexity,
        threshold, c.complexity >= threshold ? "cloud" : "local",
        heuristic ? "heuristic" : "model");
  });
}

int Detect() {
  hr::router::Detectors detectors;
  return ForEachPrompt([&](const std::string& prompt) {
    std::vector<std::string> spans;
    for (const auto& s : detectors.FindSpans(prompt)) {
      spans.push_back(absl::StrFormat(
          "{\"type\":\"%s\",\"start\":%d,\"end\":%d,\"text\":%s}",
          v1::SensitiveCategory_Name(s.category), s.start, s.end,
          JsonString(absl::string_view(prompt).substr(s.start, s.end - s.start))));
    }
    return absl::StrCat("{\"spans\":[", absl::StrJoin(spans, ","), "]}");
  });
}

}  // namespace

int main(int argc, char** argv) {
  hr::grpc_util::KeepTlsAliveUntilExit();
  std::vector<char*> args = hr::util::ParseCommandLine(argc, argv, kUsage);
  if (args.size() < 2) {
    std::fprintf(stderr, "hrctl: %s\nRun 'hrctl --help' for the flags.\n", kUsage);
    return 2;
  }
  std::string cmd = args[1];
  if (cmd == "validate") return Validate();
  if (cmd == "probe") return Probe();
  if (cmd == "demo") return Demo();
  if (cmd == "score") return Score();
  if (cmd == "detect") return Detect();
  if (cmd == "explain" || cmd == "generate") {
    auto request = BuildRequest(args);
    if (!request.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(request.status().message()).c_str());
      return 2;
    }
    return cmd == "explain" ? Explain(*request) : Generate(*request);
  }
  std::fprintf(stderr, "error: unknown command '%s'\n\nhrctl: %s", cmd.c_str(), kUsage);
  return 2;
}
