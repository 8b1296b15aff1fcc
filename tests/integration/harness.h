#ifndef HYBRID_ROUTER_TESTS_INTEGRATION_HARNESS_H_
#define HYBRID_ROUTER_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "hybridrouter/v1/cloud.grpc.pb.h"
#include "hybridrouter/v1/router.grpc.pb.h"
#include "tests/eventually.h"

namespace hr::testing {

namespace v1 = ::hybridrouter::v1;

// A child process with stdout and stderr in a log file. The destructor stops it
// (SIGTERM, then SIGKILL after 10 s).
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();
  // Sends `sig` and waits; returns the exit code (128 + signal if killed).
  int Stop(int sig = SIGTERM);
  // Waits up to `timeout` for the process to exit by itself; -1 if it did not.
  int WaitExit(absl::Duration timeout);
  bool Running();
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// Reads a whole file ("" when missing).
std::string ReadFile(const std::string& path);

// How many times `text` stands in `log`: the lines of one kind a log has, when
// each says it once.
int CountLines(const std::string& log, const std::string& text);

// Waits until the file at `path` (a process's log, say) contains `text`; false
// after `timeout`.
bool WaitForLog(const std::string& path, absl::string_view text,
                absl::Duration timeout = absl::Seconds(20));

// Waits until `path` holds a port number written by `p`; fails the test when the
// process exits first or `timeout` passes.
int WaitForPort(Process& p, const std::string& path, absl::Duration timeout = absl::Seconds(60));

// One hr-cloud with the synthetic engine, talked to directly, its files in a
// directory of its own: `hr-cloud --region=<region> --listen=<listen>
// --port_file=... --engine=synthetic`, then `flags` (a later flag wins). Waits
// until it serves; the destructor stops it.
class CloudProcess {
 public:
  explicit CloudProcess(const std::string& region, std::vector<std::string> flags = {},
                        const std::string& listen = "127.0.0.1:0");

  v1::CloudInference::Stub* stub() { return stub_.get(); }
  Process& process() { return process_; }
  int port() const { return port_; }
  // "127.0.0.1:<port>", or the host `listen` named with the port it bound.
  const std::string& address() const { return address_; }
  std::string log_path() const { return process_.log_path(); }

 private:
  std::string dir_;
  Process process_;
  int port_;
  std::string address_;
  std::unique_ptr<v1::CloudInference::Stub> stub_;
};

// One hr-device serving on loopback, talked to directly, its files in a
// directory of its own: the shipped policy and complexity model, the synthetic
// local engine and the backends file `backends_file`, then `flags` (a later flag
// wins). Waits until it serves; the destructor stops it.
class DeviceProcess {
 public:
  explicit DeviceProcess(const std::string& backends_file, std::vector<std::string> flags = {});

  v1::Router::Stub* stub() { return stub_.get(); }
  Process& process() { return process_; }
  int port() const { return port_; }
  std::string log_path() const { return process_.log_path(); }

 private:
  std::string dir_;
  Process process_;
  int port_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

struct BackendSpec {
  std::string name;
  std::string region;
  std::string model_family = "qwen";
  std::string engine = "synthetic";  // or "llama" (the tiny model)
  // hr-cloud serves TLS with this PEM certificate chain and key (empty: plaintext).
  std::string tls_cert_file, tls_key_file;
  // The backend's `tls { ... }` block in hr-device's backends file, without the
  // braces ("ca_file: \"...\""); "-" for none (plaintext).
  std::string device_tls = "-";
  // hr-device sends this backend's requests over one GenerateStream.
  bool shared_stream = false;
  // More hr-cloud flags, after the harness's own (a later flag wins).
  std::vector<std::string> flags = {};
  // The region hr-device's backends file gives it, when not `region` (a
  // misconfigured file).
  std::string listed_region = "";
};

// A topology on loopback: hr-cloud backends (synthetic echo engine, recording what
// they receive) and one hr-device with the shipped policy and a backends file
// pointing at them. Every process binds port 0.
class Topology {
 public:
  explicit Topology(std::vector<BackendSpec> backends,
                    std::vector<std::string> device_flags = {});
  ~Topology();

  v1::Router::Stub* device() { return device_stub_.get(); }
  int device_port() const { return device_port_; }
  int backend_port(const std::string& name) const { return ports_.at(name); }
  std::unique_ptr<v1::CloudInference::Stub> BackendStub(const std::string& name);
  // What backend `name` received, one text-format CloudRequest per line.
  std::string Received(const std::string& name) const;
  void StopBackend(const std::string& name);
  const std::string& dir() const { return dir_; }
  Process& device_process() { return *device_; }
  Process& backend_process(const std::string& name) { return *backends_.at(name); }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<Process>> backends_;
  std::map<std::string, int> ports_;
  std::unique_ptr<Process> device_;
  std::unique_ptr<v1::Router::Stub> device_stub_;
  int device_port_ = 0;
};

// The result of one Router.Generate call.
struct Answer {
  grpc::Status status;
  v1::RouteInfo route;
  std::string text;
  v1::Done done;
  int messages = 0;
};

v1::GenerateRequest Request(const std::string& locale, const std::string& prompt,
                            bool consent = false, v1::RouteHint hint = v1::PREFER_CLOUD,
                            int max_tokens = 16);
Answer Generate(v1::Router::Stub* stub, const v1::GenerateRequest& request,
                absl::Duration timeout = absl::Seconds(60));

// A CloudRequest as a device sends one straight to a backend: a claim for
// `jurisdiction` ("" for none) allowing `regions`, and `prompt` as the user's
// message; `max_tokens` 0 leaves the backend's default.
v1::CloudRequest CloudRequestTo(const std::string& jurisdiction,
                                const std::vector<std::string>& regions, const std::string& prompt,
                                int max_tokens = 0);

// A fresh directory for one test's files.
std::string MakeTestDir();

// A DNS server on loopback (UDP, a port of its own) that answers every A query
// with the IPv4 addresses given last and every other query with no record.
// gRPC asks it for a target that names it as the authority,
// `dns://127.0.0.1:<port>/name:port`, so a test can change what a name
// resolves to as a region's replicas come and go.
class TestDnsServer {
 public:
  TestDnsServer();
  ~TestDnsServer();
  TestDnsServer(const TestDnsServer&) = delete;
  TestDnsServer& operator=(const TestDnsServer&) = delete;

  int port() const { return port_; }
  void SetAddresses(std::vector<std::string> ipv4);
  // How many A queries it has answered.
  int a_queries();

 private:
  void Serve();

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<std::string> addresses_ ABSL_GUARDED_BY(mu_);
  int a_queries_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// Test certificates, made with openssl (fails the test if it cannot): a
// certificate authority `ca` (dir/<ca>.pem, key dir/<ca>.key), and a certificate
// for DNS name `name` signed by it (dir/<name>.pem, dir/<name>.key), which serves
// a server or, shown by hr-device, a client.
void MakeCertificateAuthority(const std::string& dir, const std::string& ca);
void MakeCertificate(const std::string& dir, const std::string& ca, const std::string& name);

// A backend that serves TLS with the server certificate `certificate` made in `dir`
// by MakeCertificate.
BackendSpec TlsBackend(const std::string& name, const std::string& region, const std::string& dir,
                       const std::string& certificate);
// The same, serving only clients whose certificate the authority `client_ca`
// (made in `dir` by MakeCertificateAuthority) signed: mutual TLS.
BackendSpec MutualTlsBackend(const std::string& name, const std::string& region,
                             const std::string& dir, const std::string& certificate,
                             const std::string& client_ca);

}  // namespace hr::testing

#endif  // HYBRID_ROUTER_TESTS_INTEGRATION_HARNESS_H_
