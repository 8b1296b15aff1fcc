#include "load_lib.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "policy/locale.h"
#include "records.pb.h"
#include "util/proto_enum.h"
#include "util/text_proto.h"

namespace hr::load {
namespace {

std::string FieldError(const std::string& path, absl::string_view what) {
  return absl::StrCat(path, ": ", what);
}

}  // namespace

absl::StatusOr<std::string> ParsePromptRecord(absl::string_view line) {
  tools::PromptRecord record;
  if (absl::Status parsed = util::ParseJsonLine(line, &record); !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a JSON object with a prompt: ", parsed.message()));
  }
  if (record.prompt().empty()) {
    return absl::InvalidArgumentError("the `prompt` field is missing or empty");
  }
  return std::move(*record.mutable_prompt());
}

absl::StatusOr<std::vector<std::string>> ParsePrompts(absl::string_view text,
                                                      const std::string& path) {
  std::vector<std::string> prompts;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (line.front() != '{') {
      prompts.emplace_back(line);
      continue;
    }
    absl::StatusOr<std::string> prompt = ParsePromptRecord(line);
    if (!prompt.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": ", prompt.status().message()));
    }
    prompts.push_back(*std::move(prompt));
  }
  return prompts;
}

absl::StatusOr<Workload> ParseWorkload(absl::string_view text, const std::string& path) {
  Workload w;
  std::vector<std::string> problems;
  if (!util::ParseConfig(path, std::string(text), &w.spec, &problems)) {
    return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  }
  if (w.spec.locales().empty()) {
    return absl::InvalidArgumentError(FieldError(path, "locales: at least one is required"));
  }
  for (int i = 0; i < w.spec.locales_size(); ++i) {
    const tools::LocaleMix& mix = w.spec.locales(i);
    if (auto parsed = policy::ParseLocale(mix.locale()); !parsed.ok()) {
      return absl::InvalidArgumentError(FieldError(
          path, absl::StrCat("locales[", i, "].locale: ", parsed.status().message())));
    }
    if (mix.weight() < 0 || !std::isfinite(mix.weight())) {
      return absl::InvalidArgumentError(FieldError(
          path, absl::StrCat("locales[", i, "].weight: must be positive (0 means 1)")));
    }
    if (std::string why =
            util::NotAnEnumValue(v1::RouteHint_descriptor(), mix.hint(), /*list_zero=*/true);
        !why.empty()) {
      return absl::InvalidArgumentError(
          FieldError(path, absl::StrCat("locales[", i, "].hint: ", why)));
    }
  }
  for (const std::string& p : w.spec.prompts()) {
    if (!p.empty()) w.prompts.push_back(p);
  }
  if (!w.spec.prompts_file().empty()) {
    std::filesystem::path file(w.spec.prompts_file());
    if (file.is_relative()) file = std::filesystem::path(path).parent_path() / file;
    absl::StatusOr<std::string> data = util::ReadFile(file.string());
    if (!data.ok()) return data.status();
    absl::StatusOr<std::vector<std::string>> prompts = ParsePrompts(*data, file.string());
    if (!prompts.ok()) return prompts.status();
    w.prompts.insert(w.prompts.end(), prompts->begin(), prompts->end());
  }
  if (w.prompts.empty()) {
    return absl::InvalidArgumentError(
        FieldError(path, "no prompts: give `prompts` or a non-empty `prompts_file`"));
  }
  return w;
}

absl::StatusOr<Workload> LoadWorkloadFile(const std::string& path) {
  absl::StatusOr<std::string> text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseWorkload(*text, path);
}

RequestSampler::RequestSampler(const Workload& workload, uint64_t seed)
    : workload_(workload), gen_(seed) {
  double total = 0;
  for (const tools::LocaleMix& mix : workload.spec.locales()) {
    total += mix.weight() > 0 ? mix.weight() : 1.0;
    cumulative_.push_back(total);
  }
}

v1::GenerateRequest RequestSampler::Next() {
  std::uniform_real_distribution<double> unit(0.0, cumulative_.back());
  const size_t locale_index = std::min<size_t>(
      std::upper_bound(cumulative_.begin(), cumulative_.end(), unit(gen_)) - cumulative_.begin(),
      cumulative_.size() - 1);
  std::uniform_int_distribution<size_t> pick(0, workload_.prompts.size() - 1);
  const tools::LocaleMix& mix = workload_.spec.locales(static_cast<int>(locale_index));

  v1::GenerateRequest r;
  r.set_request_id(absl::StrCat("load-", ++n_));
  r.set_locale(mix.locale());
  r.set_cloud_consent(mix.cloud_consent());
  r.set_hint(mix.hint());
  if (!workload_.spec.system_prompt().empty()) {
    v1::ChatMessage* m = r.add_messages();
    m->set_role("system");
    m->set_content(workload_.spec.system_prompt());
  }
  v1::ChatMessage* m = r.add_messages();
  m->set_role("user");
  m->set_content(workload_.prompts[pick(gen_)]);
  *r.mutable_options() = workload_.spec.options();
  return r;
}

ArrivalSchedule::ArrivalSchedule(double rps, uint64_t seed) : rps_(rps), gen_(seed) {}

absl::Duration ArrivalSchedule::NextGap() {
  std::exponential_distribution<double> gap(rps_);
  return absl::Seconds(gap(gen_));
}

absl::StatusOr<ResidencyOracle> ResidencyOracle::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = util::ReadFile(path);
  if (!text.ok()) return text.status();
  v1::Policy policy;
  std::vector<std::string> problems;
  if (!util::ParseConfig(path, *text, &policy, &problems)) {
    return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  }
  return FromPolicy(policy);
}

absl::StatusOr<ResidencyOracle> ResidencyOracle::FromPolicy(const v1::Policy& policy) {
  ResidencyOracle oracle;
  oracle.version_ = policy.version();
  auto allowance_of = [](const v1::Jurisdiction& j) {
    Allowance a;
    a.jurisdiction = j.id().empty() ? "default" : j.id();
    if (j.has_cloud()) {
      a.regions.assign(j.cloud().allowed_regions().begin(), j.cloud().allowed_regions().end());
    }
    return a;
  };
  for (const v1::Jurisdiction& j : policy.jurisdictions()) {
    for (const std::string& country : j.countries()) {
      auto [it, inserted] = oracle.by_country_.emplace(absl::AsciiStrToUpper(country),
                                                       allowance_of(j));
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy: country ", country, " is in more than one jurisdiction"));
      }
    }
  }
  oracle.default_ = allowance_of(policy.default_rule());
  return oracle;
}

absl::StatusOr<ResidencyOracle::Allowance> ResidencyOracle::Allowed(
    absl::string_view locale) const {
  absl::StatusOr<policy::Locale> parsed = policy::ParseLocale(locale);
  if (!parsed.ok()) return parsed.status();
  auto it = by_country_.find(parsed->country());
  Allowance allowance = it == by_country_.end() ? default_ : it->second;
  allowance.country = std::string(parsed->country());
  return allowance;
}

tools::LatencySummary Summarize(std::vector<int64_t> values) {
  tools::LatencySummary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  // Nearest rank: the smallest value with at least q of the values at or below it.
  auto at = [&](double q) {
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    return values[std::clamp<size_t>(rank, 1, n) - 1];
  };
  double sum = 0;
  for (int64_t v : values) sum += static_cast<double>(v);
  s.set_count(static_cast<int64_t>(n));
  s.set_p50_us(at(0.50));
  s.set_p90_us(at(0.90));
  s.set_p99_us(at(0.99));
  s.set_p999_us(at(0.999));
  s.set_max_us(values.back());
  s.set_mean_us(sum / static_cast<double>(n));
  return s;
}

std::string RouteName(const Outcome& outcome) {
  if (!outcome.routed) return "none";
  if (outcome.cloud) return absl::StrCat("cloud/", outcome.region);
  return outcome.fell_back ? "local-fallback" : "local";
}

std::string CodeName(int code) {
  if (code == kProtocolError) return "PROTOCOL";
  // gRPC's status codes are absl's, number for number.
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? absl::StrCat("CODE_", code) : name;
}

void ReportBuilder::Add(const Outcome& o) {
  bool violation = false;
  std::vector<std::string> allowed;
  if (o.cloud) {
    absl::StatusOr<ResidencyOracle::Allowance> a = oracle_->Allowed(o.locale);
    if (a.ok()) allowed = std::move(a->regions);
    violation = std::find(allowed.begin(), allowed.end(), o.region) == allowed.end();
  }
  const std::string route = RouteName(o);
  absl::MutexLock lock(&mu_);
  for (Group* g : {&all_, &routes_[route]}) {
    ++g->requests;
    if (o.code != 0) continue;
    ++g->ok;
    g->completion_tokens += o.completion_tokens;
    g->latency.push_back(o.latency_us);
    if (o.first_chunk_us >= 0) g->first_chunk.push_back(o.first_chunk_us);
  }
  if (o.code != 0) ++failed_;
  StatusCount& sc = statuses_[CodeName(o.code)];
  if (sc.count++ == 0) sc.example = o.message;
  sc.latency.push_back(o.latency_us);
  if (violation) {
    ++violations_;
    if (violation_examples_.size() < 10) {
      tools::Violation v;
      v.set_request_id(o.request_id);
      v.set_locale(o.locale);
      v.set_region(o.region);
      for (const std::string& r : allowed) v.add_allowed_regions(r);
      violation_examples_.push_back(std::move(v));
    }
  }
}

void ReportBuilder::AddLateStart() {
  absl::MutexLock lock(&mu_);
  ++late_starts_;
}

ReportBuilder::Progress ReportBuilder::progress() const {
  absl::MutexLock lock(&mu_);
  return {all_.requests, all_.ok, failed_, violations_};
}

tools::LoadReport ReportBuilder::Build(absl::Duration duration) const {
  absl::MutexLock lock(&mu_);
  tools::LoadReport r;
  const double seconds = std::max(absl::ToDoubleSeconds(duration), 1e-9);
  r.set_policy_version(oracle_->version());
  r.set_duration_s(absl::ToDoubleSeconds(duration));
  r.set_requests(all_.requests);
  r.set_ok(all_.ok);
  r.set_failed(failed_);
  r.set_throughput_rps(static_cast<double>(all_.ok) / seconds);
  r.set_completion_tokens(all_.completion_tokens);
  r.set_tokens_per_second(static_cast<double>(all_.completion_tokens) / seconds);
  r.set_late_starts(late_starts_);
  *r.mutable_latency() = Summarize(all_.latency);
  *r.mutable_first_chunk() = Summarize(all_.first_chunk);
  for (const auto& [name, g] : routes_) {
    tools::RouteReport* route = r.add_routes();
    route->set_route(name);
    route->set_requests(g.requests);
    route->set_ok(g.ok);
    route->set_completion_tokens(g.completion_tokens);
    *route->mutable_latency() = Summarize(g.latency);
    *route->mutable_first_chunk() = Summarize(g.first_chunk);
  }
  for (const auto& [code, sc] : statuses_) {
    tools::StatusReport* s = r.add_statuses();
    s->set_code(code);
    s->set_count(sc.count);
    s->set_example(sc.example);
    *s->mutable_latency() = Summarize(sc.latency);
  }
  r.set_residency_violations(violations_);
  for (const tools::Violation& ex : violation_examples_) *r.add_violation_examples() = ex;
  return r;
}

namespace {

std::string Ms(int64_t us) { return absl::StrFormat("%.3f", static_cast<double>(us) / 1000.0); }

std::string LatencyRow(absl::string_view name, const tools::LatencySummary& s) {
  if (s.count() == 0) return absl::StrFormat("  %-22s %8s\n", name, "-");
  return absl::StrFormat("  %-22s %8d %9s %9s %9s %9s %9s\n", name, s.count(), Ms(s.p50_us()),
                         Ms(s.p90_us()), Ms(s.p99_us()), Ms(s.p999_us()), Ms(s.max_us()));
}

}  // namespace

std::string FormatReport(const tools::LoadReport& r) {
  std::string out;
  absl::StrAppendFormat(&out, "target %s (api %s), %s loop", r.target(), r.api(), r.mode());
  if (r.mode() == "closed") absl::StrAppendFormat(&out, ", %d concurrent", r.concurrency());
  if (r.mode() == "open") absl::StrAppendFormat(&out, ", %.1f req/s offered", r.target_rps());
  absl::StrAppendFormat(&out, "\n%d requests in %.2f s: %d ok, %d failed; %.1f ok/s",
                        r.requests(), r.duration_s(), r.ok(), r.failed(), r.throughput_rps());
  if (r.completion_tokens() > 0) {
    absl::StrAppendFormat(&out, ", %.1f tokens/s", r.tokens_per_second());
  }
  if (r.late_starts() > 0) {
    absl::StrAppendFormat(&out, "\n%d requests started over 1 ms late (client saturated)",
                          r.late_starts());
  }
  absl::StrAppendFormat(&out, "\n\nlatency of OK requests (ms)\n  %-22s %8s %9s %9s %9s %9s %9s\n",
                        "", "count", "p50", "p90", "p99", "p99.9", "max");
  out += LatencyRow("end to end", r.latency());
  out += LatencyRow("first chunk", r.first_chunk());
  absl::StrAppend(&out, "\nper route (end to end; first chunk)\n");
  for (const tools::RouteReport& route : r.routes()) {
    absl::StrAppendFormat(&out, "  %s: %d requests, %d ok\n", route.route(), route.requests(),
                          route.ok());
    if (route.ok() > 0) {
      out += LatencyRow("  end to end", route.latency());
      out += LatencyRow("  first chunk", route.first_chunk());
    }
  }
  absl::StrAppend(&out, "\nper status (time to the status, ms)\n");
  for (const tools::StatusReport& s : r.statuses()) {
    out += LatencyRow(s.code(), s.latency());
    if (!s.example().empty()) absl::StrAppendFormat(&out, "  %-22s e.g. \"%s\"\n", "", s.example());
  }
  absl::StrAppendFormat(&out, "\nresidency violations: %d (checked against policy version %s)\n",
                        r.residency_violations(), r.policy_version());
  for (const tools::Violation& v : r.violation_examples()) {
    absl::StrAppendFormat(&out, "  %s locale %s served in %s; allowed: %s\n", v.request_id(),
                          v.locale(), v.region().empty() ? "(no region)" : v.region(),
                          v.allowed_regions().empty() ? "none (local only)"
                                                      : absl::StrJoin(v.allowed_regions(), ", "));
  }
  return out;
}

}  // namespace hr::load
