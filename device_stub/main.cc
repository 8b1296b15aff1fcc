// hr-device: the device-side router serving hybridrouter.v1.Router.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "device_stub/cloud_client.h"
#include "device_stub/device_router.h"
#include "device_stub/router_service.h"
#include "engine/engine_factory.h"
#include "engine/engine_pool.h"
#include "grpc_util/health_service.h"
#include "grpc_util/server_util.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "policy/residency_policy.h"
#include "router/complexity_model.h"
#include "router/request_validation.h"
#include "spdlog/spdlog.h"
#include "util/config_reloader.h"
#include "util/flags.h"
#include "util/log_format.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "address to serve Router on: HOST:PORT (port 0: any free one), or unix:PATH for a "
          "socket file that only those its permissions let in can call (removed on exit)");
ABSL_FLAG(std::string, socket_mode, "0660",
          "permissions of the socket file with --listen unix:PATH, in octal: owner and group "
          "may call by default");
ABSL_FLAG(std::string, policy, "deploy/local/policy.textproto",
          "residency policy (textproto; JSON if named *.json)");
ABSL_FLAG(std::string, backends, "deploy/local/backends.textproto",
          "cloud backends (textproto; JSON if named *.json)");
ABSL_FLAG(std::string, model, "build/models/tiny-qwen2.gguf", "local GGUF model");
ABSL_FLAG(std::string, local_engine, "llama", "llama, or synthetic (fixed-rate token stream, "
          "for load tests only)");
ABSL_FLAG(double, local_synthetic_tokens_per_second, 200, "rate of each synthetic local stream "
          "(--local_engine=synthetic; 0: unthrottled)");
ABSL_FLAG(int, local_slots, 1, "concurrent local generations (llama.cpp contexts)");
ABSL_FLAG(int, local_threads, 2, "CPU threads per llama.cpp context");
ABSL_FLAG(int, local_max_queue, 4, "local requests that may wait; beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(int, context_tokens, 2048, "tokens per llama.cpp context (prompt and answer)");
ABSL_FLAG(std::string, complexity_model, "models/complexity.pb", "learned complexity model "
          "(hr-train); empty: use the heuristic score");
ABSL_FLAG(double, complexity_threshold, -1, "complexity score from which a request prefers the "
          "cloud (where the policy allows it); -1: the model file's calibrated threshold (0.5 "
          "for the heuristic)");
ABSL_FLAG(int, max_prompt_bytes, 32 * 1024, "largest accepted prompt (all messages)");
ABSL_FLAG(int, default_max_tokens, 128, "answer length when a request gives none");
ABSL_FLAG(absl::Duration, default_deadline, absl::Seconds(120), "for calls without a deadline");
ABSL_FLAG(absl::Duration, first_text_timeout, absl::Seconds(15), "how long a cloud backend may "
          "take to send the first text of an answer; then the attempt is given up and the next "
          "allowed backend, or the policy's fallback, is tried (0: no limit)");
ABSL_FLAG(
    absl::Duration, stream_max_age, absl::Seconds(30),
    "how long a shared_stream backend's stream takes new requests; then the next one "
    "opens, which gRPC's round-robin places on the next address the backend's name "
    "resolves to, and the old one closes when its requests are done (0: until it breaks, as it "
    "does when the backend closes an old connection: hr-cloud --max_connection_age)");
ABSL_FLAG(absl::Duration, backend_keepalive_time, absl::Seconds(20),
          "ping a cloud backend's connection after this long without a byte from it (at most "
          "twice until the next request), to find a backend that stopped answering without "
          "closing the connection (0: no pings; else at least 5s, as hr-cloud accepts)");
ABSL_FLAG(absl::Duration, backend_keepalive_timeout, absl::Seconds(10),
          "how long the ping may go unanswered before the connection is closed and its "
          "requests end UNAVAILABLE (before their first text: the next allowed backend is "
          "tried)");
ABSL_FLAG(int, io_threads, 1, "threads serving Generate calls and the backend calls they make "
          "(each drives one gRPC completion queue)");
ABSL_FLAG(absl::Duration, watch_interval, absl::Seconds(2),
          "how often to look for changes to --policy, --backends and the CA files they name, "
          "and reload them (0: reload on SIGHUP only)");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port to this file once serving (1 for a unix: address)");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10), "on SIGTERM, time for running calls");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");

namespace {

// The permission bits of an octal mode such as "0660"; nullopt unless it is one.
std::optional<mode_t> ParseSocketMode(const std::string& text) {
  if (text.empty() || text.size() > 4 || text.find_first_not_of("01234567") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long mode = std::stoul(text, nullptr, 8);
  if (mode > 0777) return std::nullopt;  // no set-id or sticky bits on a socket
  return static_cast<mode_t>(mode);
}

std::shared_ptr<const hr::policy::ResidencyPolicy> LoadOrLog() {
  auto policy = hr::policy::LoadResidencyPolicy(absl::GetFlag(FLAGS_policy),
                                                absl::GetFlag(FLAGS_backends));
  if (!policy.ok()) {
    for (absl::string_view line : absl::StrSplit(policy.status().message(), '\n')) {
      spdlog::error("{}", line);
    }
    return nullptr;
  }
  for (const std::string& w : (*policy)->warnings()) spdlog::warn("policy: {}", w);
  spdlog::info("policy version={} jurisdictions={} backends={}", (*policy)->version(),
               (*policy)->rules().size(), (*policy)->backends().backends_size());
  return *policy;
}

// The files a configuration was read from: the policy, the backends, and the CA,
// certificate and key files the backends' TLS blocks name.
std::set<std::string> ConfigFiles(const hr::policy::ResidencyPolicy& policy) {
  std::set<std::string> files = {absl::GetFlag(FLAGS_policy), absl::GetFlag(FLAGS_backends)};
  for (const hybridrouter::v1::Backend& b : policy.backends().backends()) {
    for (const std::string& f : {b.tls().ca_file(), b.tls().cert_file(), b.tls().key_file()}) {
      if (!f.empty()) files.insert(f);
    }
  }
  return files;
}

// Loads the policy and backends again (a reload, prompted by `why`). When they
// validate, `router` uses them from the next request on, `cloud` drops the
// connections to backends they no longer list, and the files they were read
// from are returned; otherwise nullopt, and the configuration in force stays.
std::optional<std::set<std::string>> ReloadInto(hr::device::DeviceRouter* router,
                                                hr::device::GrpcCloudClient* cloud,
                                                absl::string_view why) {
  spdlog::info("{}: reloading the policy and backends", why);
  std::shared_ptr<const hr::policy::ResidencyPolicy> reloaded = LoadOrLog();
  if (reloaded == nullptr) {
    spdlog::error("reload failed; keeping policy version={}", router->policy()->version());
    return std::nullopt;
  }
  std::set<std::string> files = ConfigFiles(*reloaded);
  const hybridrouter::v1::Backends backends = reloaded->backends();
  router->SetPolicy(std::move(reloaded));
  cloud->KeepOnly(backends);
  return files;
}

constexpr char kUsage[] =
    "The device router: serves hybridrouter.v1.Router, runs each request on the local\n"
    "model or on a cloud backend in a region its locale's policy allows.\n"
    "SIGHUP, or a change to either file or to a CA file the backends name, reloads\n"
    "--policy and --backends (an invalid file keeps the old config).\n"
    "Usage: hr-device [--listen 127.0.0.1:50051] [--policy FILE] [--backends FILE] "
    "[--model FILE.gguf]";

}  // namespace

int main(int argc, char** argv) {
  if (!hr::grpc_util::StartServerProcess("hr-device", kUsage, argc, argv, FLAGS_log_level))
    return 2;

  const int slots = absl::GetFlag(FLAGS_local_slots);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::optional<mode_t> socket_mode = ParseSocketMode(absl::GetFlag(FLAGS_socket_mode));
  const std::string engine = absl::GetFlag(FLAGS_local_engine);
  hr::util::FlagChecks check;
  check.Require(hr::engine::IsKnownEngine(engine),
                absl::StrCat("--local_engine must be llama or synthetic, not '", engine, "'"));
  check.RequireThreads("local_slots", slots);
  check.Require(absl::GetFlag(FLAGS_local_max_queue) >= 0,
                "--local_max_queue must not be negative");
  check.RequireThreads("local_threads", absl::GetFlag(FLAGS_local_threads));
  check.Require(absl::GetFlag(FLAGS_context_tokens) >= 1, "--context_tokens must be at least 1");
  check.Require(absl::GetFlag(FLAGS_local_synthetic_tokens_per_second) >= 0,
                "--local_synthetic_tokens_per_second must not be negative");
  check.Require(hr::router::CheckThresholdOverride(absl::GetFlag(FLAGS_complexity_threshold)));
  check.Require(absl::GetFlag(FLAGS_max_prompt_bytes) >= 1,
                "--max_prompt_bytes must be at least 1");
  check.Require(
      absl::GetFlag(FLAGS_default_max_tokens) >= 1 &&
          absl::GetFlag(FLAGS_default_max_tokens) <= hr::router::RequestLimits{}.max_tokens,
      absl::StrCat("--default_max_tokens must be 1 to ", hr::router::RequestLimits{}.max_tokens));
  check.Require(absl::GetFlag(FLAGS_default_deadline) > absl::ZeroDuration(),
                "--default_deadline must be positive");
  check.Require(absl::GetFlag(FLAGS_first_text_timeout) >= absl::ZeroDuration(),
                "--first_text_timeout must not be negative");
  check.Require(absl::GetFlag(FLAGS_stream_max_age) >= absl::ZeroDuration(),
                "--stream_max_age must not be negative");
  const absl::Duration keepalive = absl::GetFlag(FLAGS_backend_keepalive_time);
  check.Require(
      keepalive == absl::ZeroDuration() || keepalive >= hr::grpc_util::kMinClientPingInterval,
      absl::StrCat("--backend_keepalive_time must be 0 (off) or at least ",
                   absl::FormatDuration(hr::grpc_util::kMinClientPingInterval),
                   " (backends refuse more frequent pings)"));
  check.Require(absl::GetFlag(FLAGS_backend_keepalive_timeout) >= absl::Milliseconds(1),
                "--backend_keepalive_timeout must be positive");
  check.RequireThreads("io_threads", absl::GetFlag(FLAGS_io_threads));
  check.Require(absl::GetFlag(FLAGS_watch_interval) >= absl::ZeroDuration(),
                "--watch_interval must not be negative");
  check.Require(absl::GetFlag(FLAGS_drain_timeout) >= absl::ZeroDuration(),
                "--drain_timeout must not be negative");
  check.Require(socket_mode.has_value(),
                absl::StrCat("--socket_mode must be octal permission bits such as 0660, not '",
                             absl::GetFlag(FLAGS_socket_mode), "'"));
  if (!check.ok()) {
    for (const std::string& problem : check.problems()) spdlog::error("{}", problem);
    return 2;
  }
  std::shared_ptr<const hr::policy::ResidencyPolicy> policy = LoadOrLog();
  if (policy == nullptr) {
    spdlog::error("refusing to start with an invalid configuration");
    return 1;
  }
  hr::engine::EngineSpec spec;
  spec.kind = engine;
  spec.slots = slots;
  spec.llama = {absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_context_tokens),
                absl::GetFlag(FLAGS_local_threads)};
  spec.synthetic.tokens_per_second = absl::GetFlag(FLAGS_local_synthetic_tokens_per_second);
  auto made = hr::engine::MakeEngine(spec);
  if (!made.ok()) {
    spdlog::error("{}", made.status().message());
    return 1;
  }
  auto complexity = hr::router::LoadComplexityConfig(absl::GetFlag(FLAGS_complexity_model),
                                                     absl::GetFlag(FLAGS_complexity_threshold));
  if (!complexity.ok()) {
    spdlog::error("{}", complexity.status().message());
    return 1;
  }
  if (complexity->model != nullptr) {
    const hr::router::ComplexityModel& model = *complexity->model;
    spdlog::info(
        "complexity model {} threshold={:.4f} ({}); mostly-CJK text: {} ({} of its "
        "training prompts)",
        absl::GetFlag(FLAGS_complexity_model), model.threshold(), model.weights().threshold_note(),
        model.covers_cjk() ? "the model" : "the heuristic", model.weights().cjk_training_prompts());
  }
  hr::engine::EnginePool local(std::move(made->generators), absl::GetFlag(FLAGS_local_max_queue));
  // Made with the server (its queues belong to the server's builder), before any call.
  std::unique_ptr<hr::grpc_util::CqPool> queues;
  hr::device::GrpcCloudClientOptions cloud_options;
  cloud_options.first_text_timeout = absl::GetFlag(FLAGS_first_text_timeout);
  cloud_options.stream_max_age = absl::GetFlag(FLAGS_stream_max_age);
  cloud_options.keepalive.time = absl::GetFlag(FLAGS_backend_keepalive_time);
  cloud_options.keepalive.timeout = absl::GetFlag(FLAGS_backend_keepalive_timeout);
  hr::device::GrpcCloudClient cloud([&queues] { return queues->Pick(); }, cloud_options);
  hr::router::BackendHealth health(hr::router::OutlierOptions{});
  hr::device::DeviceRouterOptions options;
  options.limits.max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  options.complexity_threshold = complexity->threshold;
  options.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  options.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  hr::device::DeviceRouter router(options, policy, &local, &cloud, &health,
                                  complexity->model.get());
  hr::device::RouterService service(&router);
  hr::grpc_util::QueueHealthService health_service;

  // A socket file is created owner-only and then opened up to --socket_mode, so no
  // one outside that mode can connect in between.
  const bool on_socket_file = absl::StartsWith(listen, "unix:");
  const mode_t old_umask = on_socket_file ? umask(0177) : 0;
  auto server = hr::grpc_util::StartServer(
      listen, {&service}, absl::GetFlag(FLAGS_port_file),
      [&queues, &health_service](grpc::ServerBuilder& builder) {
        queues = std::make_unique<hr::grpc_util::CqPool>(builder, absl::GetFlag(FLAGS_io_threads));
        builder.RegisterService(&health_service);
        builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(
            health_service.Controller()));
      });
  if (on_socket_file) umask(old_umask);
  if (!server.ok()) {
    spdlog::error("{}", server.status().message());
    // The server that failed to start stays registered with the queues, and shutting
    // them down would log a gRPC error about it; the process is ending anyway.
    (void)queues.release();
    return 1;
  }
  if (on_socket_file) {
    const std::string path = listen.substr(std::strlen("unix:"));
    if (chmod(path.c_str(), *socket_mode) != 0) {
      spdlog::error("cannot set mode {} on {}: {}", absl::GetFlag(FLAGS_socket_mode), path,
                    std::strerror(errno));
      return 1;
    }
  }
  queues->Start();
  service.Serve(queues.get());
  health_service.Serve(queues.get());
  spdlog::info("serving port={} local_engine={} model=\"{}\" slots={} version={}", server->port,
               engine, made->description, slots, hr::util::Version());

  // SIGHUP, or a change to a file the configuration was read from (a CA file
  // too: certificate authorities are rotated), reloads it.
  hr::util::ConfigReloader reloader(ConfigFiles(*policy), [&router, &cloud](absl::string_view why) {
    return ReloadInto(&router, &cloud, why);
  });
  reloader.Watch(absl::GetFlag(FLAGS_watch_interval));
  int sig = hr::grpc_util::WaitForTermination([&reloader] { reloader.Reload("SIGHUP"); });
  spdlog::info("signal {}: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  reloader.StopWatching();
  health_service.Shutdown();  // NOT_SERVING, and watchers are let go
  if (!hr::grpc_util::DrainServer(server->server.get(), queues->live_calls(),
                                  absl::Now() + absl::GetFlag(FLAGS_drain_timeout))) {
    spdlog::warn("drain deadline passed: the calls left were cancelled");
  }
  // Every call has ended; backend calls cancelled with them end shortly. Only then
  // may their queues shut down (no operation may start on a shut-down queue).
  if (!cloud.WaitForCalls(absl::Seconds(5))) spdlog::warn("backend calls still running at exit");
  if (!cloud.CloseStreams(absl::Seconds(5))) spdlog::warn("backend streams still open at exit");
  queues->Shutdown();
  local.Shutdown();
  spdlog::info("stopped");
  return 0;
}
