#include "grpc_util/server_util.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "openssl/crypto.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "util/flags.h"
#include "util/pem.h"
#include "util/text_proto.h"

namespace hr::grpc_util {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

namespace {

// gRPC removes a socket file before it binds its own, so a second server on the
// same path would take it over and leave the first one unreachable. A socket
// file someone still accepts connections on is therefore refused; a stale one
// (its server gone) is left for gRPC to replace.
absl::Status CheckSocketFileFree(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on unix:", path, ": the path exists and is not a socket"));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return absl::OkStatus();  // gRPC says why
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::OkStatus();
  const bool served = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  const int err = errno;
  close(fd);
  if (served) {
    return absl::UnavailableError(absl::StrCat("cannot listen on unix:", path,
                                               ": another process is serving on that socket"));
  }
  // Refused: nobody listens, the file is stale. Anything else (no permission to
  // connect, say) leaves it unknown whether someone does, so it is not replaced.
  if (err != ECONNREFUSED && err != ENOENT) {
    return absl::UnavailableError(absl::StrCat("cannot listen on unix:", path,
                                               ": cannot tell whether another process serves on "
                                               "that socket (",
                                               std::strerror(err), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

int ChannelArgMillis(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  if (d >= absl::Milliseconds(std::numeric_limits<int>::max())) {
    return std::numeric_limits<int>::max();
  }
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

absl::StatusOr<RunningServer> StartServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    const std::string& port_file, const std::function<void(grpc::ServerBuilder&)>& configure,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  if (absl::StartsWith(listen, "unix:")) {
    if (absl::Status free = CheckSocketFileFree(listen.substr(5)); !free.ok()) return free;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  RunningServer out;
  builder.AddListeningPort(
      listen, credentials != nullptr ? credentials : grpc::InsecureServerCredentials(), &out.port);
  // gRPC binds with SO_REUSEPORT by default, so a second server on a port in use
  // would start and silently take part of the first one's connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Clients that check a quiet connection with pings (hr-device's backend
  // keepalive) may do so this often; gRPC's default is once in 5 minutes.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ChannelArgMillis(kMinClientPingInterval));
  for (grpc::Service* s : services) builder.RegisterService(s);
  if (configure) configure(builder);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        " (gRPC's log line before this one has the reason, such as 'Address already in use')"));
  }
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << out.port << "\n";
      if (!f) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot write ", port_file));
    }
  }
  return out;
}

// How long cancelled calls may take to end once the drain deadline passed.
constexpr absl::Duration kCancelledCallsGrace = absl::Seconds(5);

bool DrainServer(grpc::Server* server, LiveCalls* calls, absl::Time deadline) {
  // gRPC's own deadline comes later, as a backstop: had it the same one, it could
  // cancel the calls left just before WaitForNone looks, which would then find
  // none and report a drain that the deadline cut.
  std::thread shutdown(
      [server, deadline] { server->Shutdown(absl::ToChronoTime(deadline + absl::Seconds(2))); });
  // The Shutdown lets go of the call objects waiting for calls, so none left
  // means none is serving one.
  const bool drained = calls->WaitForNone(deadline);
  // Every call is over: what keeps the Shutdown waiting now is connections
  // whose clients have not yet closed them.
  grpc_server_cancel_all_calls(server->c_server());
  shutdown.join();
  // A cancelled call's object still starts its finish when its done notice
  // comes back on its queue; shutting the queue down first would abort the
  // process (gRPC asserts that no operation starts on a shut-down queue).
  if (!drained && !calls->WaitForNone(absl::Now() + kCancelledCallsGrace)) {
    spdlog::warn("calls still open {} after they were cancelled",
                 absl::FormatDuration(kCancelledCallsGrace));
  }
  return drained;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const std::string& cert_chain_file, const std::string& private_key_file,
    const std::string& client_ca_file) {
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  std::vector<std::tuple<const std::string*, std::string*, util::PemKind>> files = {
      {&cert_chain_file, &pair.cert_chain, util::PemKind::kCertificate},
      {&private_key_file, &pair.private_key, util::PemKind::kPrivateKey}};
  if (!client_ca_file.empty()) {
    files.emplace_back(&client_ca_file, &options.pem_root_certs, util::PemKind::kCertificate);
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  for (auto [file, out, kind] : files) {
    absl::StatusOr<std::string> pem = util::ReadPemFile(*file, kind);
    if (!pem.ok()) return absl::InvalidArgumentError(pem.status().message());
    *out = *std::move(pem);
  }
  options.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(options);
}

namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void KeepTlsAliveUntilExit() {
  // Only the first initialisation decides whether OpenSSL registers its atexit
  // cleanup, so this must come before gRPC's.
  if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) != 1) {
    std::fprintf(stderr, "warning: OpenSSL did not initialise; TLS will fail\n");
  }
}

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTermination(const std::function<void()>& on_hup) {
  sigset_t set = TerminationSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (on_hup) on_hup();
      continue;
    }
    return sig;
  }
}

absl::Status InitLogging(const std::string& program, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(program);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n %v");
  spdlog::set_default_logger(logger);
  // spdlog reads a name it does not know as "off", which would silence the log.
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log_level must be trace, debug, info, warn, error or off, not '", level, "'"));
  }
  logger->set_level(parsed);
  return absl::OkStatus();
}

bool StartServerProcess(const std::string& program, const char* usage, int argc, char** argv,
                        const absl::Flag<std::string>& log_level) {
  KeepTlsAliveUntilExit();
  BlockTerminationSignals();
  util::ParseCommandLine(argc, argv, usage);
  if (absl::Status logging = InitLogging(program, absl::GetFlag(log_level)); !logging.ok()) {
    spdlog::error("{}", std::string(logging.message()));
    return false;
  }
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}

}  // namespace hr::grpc_util
