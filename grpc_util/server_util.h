#ifndef HYBRID_ROUTER_GRPC_UTIL_SERVER_UTIL_H_
#define HYBRID_ROUTER_GRPC_UTIL_SERVER_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc_util/cq_pool.h"
#include "grpcpp/grpcpp.h"

namespace hr::grpc_util {

// Maps between absl::Status (inside) and grpc::Status (at the edge); the codes
// have the same numbers.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// The shortest interval at which StartServer's servers accept a client's
// keepalive pings while they send it nothing; a client that pings more often
// is sent GOAWAY (gRPC's ping strikes). hr-device's backend keepalive may not
// be shorter.
inline constexpr absl::Duration kMinClientPingInterval = absl::Seconds(5);

// `d` as a gRPC channel argument in milliseconds: negative durations give 0, and
// anything past INT_MAX milliseconds (some 24 days; the infinite duration too)
// gives INT_MAX, where a plain cast would wrap to a negative number.
int ChannelArgMillis(absl::Duration d);

// A started gRPC server with the standard health service and server reflection.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful with a listen address ending in :0)
};

// Builds and starts a server on `listen` (host:port; port 0 picks a free one) with
// `services`, the gRPC health service (serving) and reflection. When `port_file`
// is non-empty, writes the bound port to it (atomically, via rename) once the
// server accepts calls. Accepts keepalive pings every kMinClientPingInterval.
// `configure`, when given, adds to the builder before the server starts
// (completion queues, say). `credentials` null: plaintext. Unavailable when the
// address cannot be bound (or the credentials not used): a port another process
// listens on is refused (no SO_REUSEPORT sharing), and so is a socket file
// (`unix:PATH`) that another process still serves on.
absl::StatusOr<RunningServer> StartServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    const std::string& port_file,
    const std::function<void(grpc::ServerBuilder&)>& configure = nullptr,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

// Shuts down `server`, whose calls are all served on completion-queue threads
// whose call objects `calls` counts (a CqPool's): it takes no new calls, the
// running ones may finish until `deadline` and are then cancelled. Returns as
// soon as no call is left, closing the connections still open: gRPC's Shutdown
// alone also waits for every client to close its connection, and a client with
// no call in flight may notice the server's GOAWAY only seconds later, so an
// idle app would hold the drain up to its deadline. False when calls were still
// running at `deadline`; it then also waits (a few seconds at most) for the
// cancelled calls' objects to end, since each still finishes its call on its
// queue, and no operation may start on a queue once it is shut down.
bool DrainServer(grpc::Server* server, LiveCalls* calls, absl::Time deadline);

// TLS credentials from a PEM certificate chain and its private key (files). With
// `client_ca_file` (PEM certificate authorities), mutual TLS: every client must
// show a certificate that one of them signed, or its connection is refused.
// InvalidArgument naming the file that cannot be read or holds no PEM block.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const std::string& cert_chain_file, const std::string& private_key_file,
    const std::string& client_ca_file = "");

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it
// starts afterwards; call first thing in main.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT (and returns it), calling `on_hup` for each SIGHUP
// meanwhile. Requires BlockTerminationSignals() first.
int WaitForTermination(const std::function<void()>& on_hup);

// Keeps OpenSSL from cleaning itself up when the process exits; call first
// thing in main, before anything uses TLS. gRPC's threads outlive main: one may
// be starting a TLS handshake (a reconnect after a refused one) while exit()
// runs OpenSSL's cleanup, and the handshake then takes a freed lock. Seen as
// hr-load dying of SIGSEGV after "cannot connect ... over TLS" (OPENSSL_cleanup
// on the main thread, RAND_priv_bytes_ex in a handshake on another). What the
// cleanup would free goes with the process anyway.
void KeepTlsAliveUntilExit();

// Sets up spdlog on stderr with `level` (trace, debug, info, warn, error, off).
// InvalidArgument for another level, after setting up the log at info (so the
// error can be logged).
absl::Status InitLogging(const std::string& program, const std::string& level);

// The start of a server's main (hr-device, hr-cloud), in order: OpenSSL kept
// until exit, termination signals blocked (for WaitForTermination), --help
// listing the program's own flags under `usage`, the command line parsed,
// logging set up at the level of the `log_level` flag, and Abseil's lock-order
// checks switched off: Debian's Abseil runs them on every mutex acquisition,
// which costs more than the locking itself on the request path (tests keep
// them). False, with the reason logged, when the log level is not one we know.
bool StartServerProcess(const std::string& program, const char* usage, int argc, char** argv,
                        const absl::Flag<std::string>& log_level);

}  // namespace hr::grpc_util

#endif  // HYBRID_ROUTER_GRPC_UTIL_SERVER_UTIL_H_
