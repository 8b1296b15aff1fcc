// hr-cloud: a region-pinned cloud backend serving CloudInference.
#include <signal.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cloud_backend/inference_service.h"
#include "engine/engine_factory.h"
#include "engine/engine_pool.h"
#include "grpc_util/server_util.h"
#include "policy/residency_policy.h"
#include "spdlog/spdlog.h"
#include "util/config_reloader.h"
#include "util/flags.h"
#include "util/log_format.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, region, "", "the region this backend runs in (required), e.g. cn-north-1");
ABSL_FLAG(std::string, engine, "llama", "llama (a GGUF model through llama.cpp) or synthetic "
          "(a fixed-rate deterministic token stream for load tests)");
ABSL_FLAG(std::string, model, "build/models/tiny-qwen2.gguf", "GGUF model for --engine=llama");
ABSL_FLAG(int, slots, 1, "concurrent generations (llama.cpp contexts or synthetic streams)");
ABSL_FLAG(int, threads, 1, "CPU threads per llama.cpp context");
ABSL_FLAG(int, context_tokens, 2048, "tokens per llama.cpp context (prompt and answer)");
ABSL_FLAG(int, max_queue, 16, "requests that may wait for a slot; beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(double, synthetic_tokens_per_second, 200, "rate of each synthetic stream (0: unthrottled)");
ABSL_FLAG(bool, synthetic_echo, false, "synthetic engine answers with the last user message");
ABSL_FLAG(std::string, tls_cert_file, "",
          "serve TLS with this PEM certificate chain (with --tls_key_file); empty: plaintext");
ABSL_FLAG(std::string, tls_key_file, "", "the PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "mutual TLS: serve only clients whose certificate one of these PEM certificate "
          "authorities signed (with --tls_cert_file); empty: any client");
ABSL_FLAG(std::string, policy, "",
          "the residency policy (the devices' policy file): every claim must also name a "
          "jurisdiction it allows in --region (and on --model_family), and the country it "
          "claims must belong to that jurisdiction; reloaded on SIGHUP and when the file "
          "changes. Empty: claims are checked only for listing --region");
ABSL_FLAG(std::string, model_family, "",
          "the model family this backend runs (qwen, llama...), checked against --policy's "
          "allowed families; empty: not checked");
ABSL_FLAG(absl::Duration, watch_interval, absl::Seconds(2),
          "how often to look for a change to --policy and reload it (0: on SIGHUP only)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");
ABSL_FLAG(std::string, record_requests, "", "TESTS ONLY: append each accepted request, text "
          "included, to this file");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "on SIGTERM, how long running streams may take to finish");
ABSL_FLAG(absl::Duration, client_keepalive_time, absl::Seconds(30),
          "ping a client's connection that has calls open after this long with no byte from "
          "it, so that the calls of a device that vanished (its network gone, its connection "
          "never closed) are cancelled and their slots freed (0: off)");
ABSL_FLAG(absl::Duration, client_keepalive_timeout, absl::Seconds(10),
          "close a connection whose keepalive ping is unanswered this long, cancelling its calls");
ABSL_FLAG(absl::Duration, max_connection_age, absl::Minutes(30),
          "ask each client to move to a new connection after this long (GOAWAY; gRPC adds up "
          "to 10% either way), so that devices look the backend's name up again and spread "
          "over replicas added since, and a connection whose device vanished is closed at the "
          "latest then (0: never)");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::Minutes(5),
          "how long the calls on a connection told to move may still run before it is closed; "
          "give it more than hr-device's --stream_max_age plus the longest request deadline");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");

namespace {

// The policy at `path` for checking claims, or null after logging why it cannot
// be used. Warns when it allows no jurisdiction in `region` (on `model_family`):
// such a backend refuses every request.
std::shared_ptr<const hr::policy::ResidencyPolicy> LoadPolicyOrLog(
    const std::string& path, const std::string& region, const std::string& model_family) {
  auto policy = hr::policy::LoadResidencyPolicy(path, /*backends_path=*/"");
  if (!policy.ok()) {
    for (absl::string_view line : absl::StrSplit(policy.status().message(), '\n')) {
      spdlog::error("{}", line);
    }
    return nullptr;
  }
  std::vector<std::string> served;
  for (const hr::policy::JurisdictionRule& rule : (*policy)->rules()) {
    if (rule.cloud_allowed && rule.AllowsRegion(region) &&
        (model_family.empty() || rule.AllowsModelFamily(model_family))) {
      served.push_back(rule.id);
    }
  }
  if (served.empty()) {
    spdlog::warn(
        "policy version={} allows no jurisdiction in region {}{}: every request will "
        "be refused",
        (*policy)->version(), region,
        model_family.empty() ? "" : absl::StrCat(" on model family ", model_family));
  }
  spdlog::info("policy version={} jurisdictions served here: {}", (*policy)->version(),
               served.empty() ? "none" : absl::StrJoin(served, ","));
  return *policy;
}

constexpr char kUsage[] =
    "A region-pinned cloud backend: serves hybridrouter.v1.CloudInference and refuses\n"
    "(FAILED_PRECONDITION) every request whose residency claim does not list --region,\n"
    "and with --policy every claim the residency policy does not allow here.\n"
    "SIGHUP, or a change to the file, reloads --policy (an invalid file keeps the old one).\n"
    "Usage: hr-cloud --region cn-north-1 [--policy FILE --model_family qwen] "
    "[--listen 127.0.0.1:50061] [--engine llama --model m.gguf | --engine synthetic]";

}  // namespace

int main(int argc, char** argv) {
  if (!hr::grpc_util::StartServerProcess("hr-cloud", kUsage, argc, argv, FLAGS_log_level)) return 2;

  const std::string region = absl::GetFlag(FLAGS_region);
  const int slots = absl::GetFlag(FLAGS_slots);
  const std::string engine = absl::GetFlag(FLAGS_engine);
  hr::util::FlagChecks check;
  check.Require(!region.empty(), "--region is required (see --help)");
  check.Require(hr::engine::IsKnownEngine(engine),
                absl::StrCat("--engine must be llama or synthetic, not '", engine, "'"));
  check.RequireThreads("slots", slots);
  check.Require(absl::GetFlag(FLAGS_max_queue) >= 0, "--max_queue must not be negative");
  check.RequireThreads("threads", absl::GetFlag(FLAGS_threads));
  check.Require(absl::GetFlag(FLAGS_context_tokens) >= 1, "--context_tokens must be at least 1");
  check.Require(absl::GetFlag(FLAGS_synthetic_tokens_per_second) >= 0,
                "--synthetic_tokens_per_second must not be negative");
  check.Require(absl::GetFlag(FLAGS_drain_timeout) >= absl::ZeroDuration(),
                "--drain_timeout must not be negative");
  check.Require(absl::GetFlag(FLAGS_watch_interval) >= absl::ZeroDuration(),
                "--watch_interval must not be negative");
  check.Require(absl::GetFlag(FLAGS_client_keepalive_time) >= absl::ZeroDuration(),
                "--client_keepalive_time must not be negative");
  check.Require(absl::GetFlag(FLAGS_client_keepalive_timeout) >= absl::Milliseconds(1),
                "--client_keepalive_timeout must be positive");
  check.Require(absl::GetFlag(FLAGS_max_connection_age) >= absl::ZeroDuration(),
                "--max_connection_age must not be negative");
  check.Require(absl::GetFlag(FLAGS_max_connection_age_grace) >= absl::ZeroDuration(),
                "--max_connection_age_grace must not be negative");
  if (!check.ok()) {
    for (const std::string& problem : check.problems()) spdlog::error("{}", problem);
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials;  // null: plaintext
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  if (absl::Status pair = hr::util::CheckCertificateAndKeyFlags(cert, key); !pair.ok()) {
    spdlog::error("{}", pair.message());
    return 2;
  }
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca_file);
  if (!client_ca.empty() && cert.empty()) {
    spdlog::error(
        "--tls_client_ca_file needs --tls_cert_file and --tls_key_file: client "
        "certificates are asked for over TLS only");
    return 2;
  }
  if (!cert.empty()) {
    auto tls = hr::grpc_util::TlsServerCredentials(cert, key, client_ca);
    if (!tls.ok()) {
      spdlog::error("{}", tls.status().message());
      return 2;
    }
    credentials = *std::move(tls);
  }
  const std::string policy_path = absl::GetFlag(FLAGS_policy);
  const std::string model_family = absl::GetFlag(FLAGS_model_family);
  std::shared_ptr<const hr::policy::ResidencyPolicy> policy;
  if (!policy_path.empty()) {
    policy = LoadPolicyOrLog(policy_path, region, model_family);
    if (policy == nullptr) {
      spdlog::error("refusing to start with an invalid policy");
      return 1;
    }
  }
  hr::engine::EngineSpec spec;
  spec.kind = engine;
  spec.slots = slots;
  spec.llama = {absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_context_tokens),
                absl::GetFlag(FLAGS_threads)};
  spec.synthetic = {absl::GetFlag(FLAGS_synthetic_tokens_per_second),
                    absl::GetFlag(FLAGS_synthetic_echo)};
  auto made = hr::engine::MakeEngine(spec);
  if (!made.ok()) {
    spdlog::error("{}", made.status().message());
    return 1;
  }
  const std::string model_name = made->description;
  hr::engine::EnginePool pool(std::move(made->generators), absl::GetFlag(FLAGS_max_queue));
  hr::cloud::InferenceService service(
      {region, model_name, model_family, absl::GetFlag(FLAGS_record_requests)}, &pool);
  service.SetPolicy(policy);

  const absl::Duration keepalive = absl::GetFlag(FLAGS_client_keepalive_time);
  const absl::Duration keepalive_timeout = absl::GetFlag(FLAGS_client_keepalive_timeout);
  const absl::Duration max_age = absl::GetFlag(FLAGS_max_connection_age);
  const absl::Duration max_age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  auto server = hr::grpc_util::StartServer(
      absl::GetFlag(FLAGS_listen), {&service}, absl::GetFlag(FLAGS_port_file),
      [keepalive, keepalive_timeout, max_age, max_age_grace](grpc::ServerBuilder& builder) {
        // gRPC re-arms the ping's timer on every read, and sends at most two
        // pings (its default) before it has written something again, so a quiet
        // device is not woken over and over.
        builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                                   hr::grpc_util::ChannelArgMillis(keepalive == absl::ZeroDuration()
                                                                       ? absl::InfiniteDuration()
                                                                       : keepalive));
        builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                                   hr::grpc_util::ChannelArgMillis(keepalive_timeout));
        if (max_age > absl::ZeroDuration()) {
          builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                     hr::grpc_util::ChannelArgMillis(max_age));
          builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                     hr::grpc_util::ChannelArgMillis(max_age_grace));
        }
      },
      credentials);
  if (!server.ok()) {
    spdlog::error("{}", server.status().message());
    return 1;
  }
  spdlog::info("serving region={} engine={} model=\"{}\" port={} slots={} transport={} version={}",
               region, engine, model_name, server->port, slots,
               !credentials        ? "plaintext"
               : client_ca.empty() ? "tls"
                                   : "mtls",
               hr::util::Version());

  // The policy is reloaded on SIGHUP and when the file changes; an invalid
  // version keeps the one in force.
  std::optional<hr::util::ConfigReloader> reloader;
  if (policy != nullptr) {
    reloader.emplace(std::set<std::string>{policy_path}, [&](absl::string_view why) {
      spdlog::info("{}: reloading the policy", why);
      std::shared_ptr<const hr::policy::ResidencyPolicy> reloaded =
          LoadPolicyOrLog(policy_path, region, model_family);
      if (reloaded == nullptr) {
        spdlog::error("reload failed; keeping policy version={}", service.policy()->version());
        return std::optional<std::set<std::string>>();
      }
      service.SetPolicy(std::move(reloaded));
      return std::optional<std::set<std::string>>({policy_path});
    });
    reloader->Watch(absl::GetFlag(FLAGS_watch_interval));
  }
  int sig = hr::grpc_util::WaitForTermination([&reloader] {
    if (reloader.has_value()) reloader->Reload("SIGHUP");
  });
  reloader.reset();
  spdlog::info("signal {}: draining (up to {})", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(absl::GetFlag(FLAGS_drain_timeout)));
  service.StartDraining();
  server->server->GetHealthCheckService()->SetServingStatus(false);
  if (!hr::grpc_util::DrainServer(server->server.get(), service.live_calls(),
                                  absl::Now() + absl::GetFlag(FLAGS_drain_timeout))) {
    spdlog::warn("drain deadline passed: the calls left were cancelled");
  }
  pool.Shutdown();
  spdlog::info("stopped");
  return 0;
}
