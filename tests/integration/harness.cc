#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace hr::testing {

Process::Process(const std::vector<std::string>& argv, const std::string& log_path)
    : log_path_(log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  if (rc != 0) pid_ = -1;
}

Process::~Process() {
  if (Running()) Stop(SIGTERM);
}

bool Process::Running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

int Process::WaitExit(absl::Duration timeout) {
  return Eventually([this] { return !Running(); }, timeout) ? exit_code_ : -1;
}

int Process::Stop(int sig) {
  if (!Running()) return exit_code_;
  kill(pid_, sig);
  if (WaitExit(absl::Seconds(10)) < 0) {
    kill(pid_, SIGKILL);
    WaitExit(absl::Seconds(10));
  }
  return exit_code_;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WaitForLog(const std::string& path, absl::string_view text, absl::Duration timeout) {
  return Eventually([&] { return absl::StrContains(ReadFile(path), text); }, timeout);
}

int WaitForPort(Process& p, const std::string& path, absl::Duration timeout) {
  int port = 0;
  bool exited = false;
  Eventually(
      [&] {
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(path)), &port) && port > 0) {
          return true;
        }
        port = 0;
        exited = !p.Running();
        return exited;
      },
      timeout);
  if (exited) {
    ADD_FAILURE() << "process exited before serving; log:\n" << ReadFile(p.log_path());
  } else if (port == 0) {
    ADD_FAILURE() << "no port in " << path << " after " << timeout;
  }
  return port;
}

int CountLines(const std::string& log, const std::string& text) {
  int n = 0;
  for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
  return n;
}

std::string MakeTestDir() {
  std::string tmpl = ::testing::TempDir() + "/hr-it-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

namespace {
void RunQuietly(const std::string& command) {
  ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
}
}  // namespace

void MakeCertificateAuthority(const std::string& dir, const std::string& ca) {
  const std::string base = absl::StrCat(dir, "/", ca);
  RunQuietly(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1",
                          " -nodes -days 2 -subj /CN=", ca, " -keyout ", base, ".key -out ", base,
                          ".pem"));
}

void MakeCertificate(const std::string& dir, const std::string& ca, const std::string& name) {
  const std::string base = absl::StrCat(dir, "/", name), authority = absl::StrCat(dir, "/", ca);
  std::ofstream(base + ".ext") << "subjectAltName=DNS:" << name << "\n";
  RunQuietly(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                          " -subj /CN=", name, " -keyout ", base, ".key -out ", base, ".csr"));
  RunQuietly(absl::StrCat("openssl x509 -req -days 2 -in ", base, ".csr -CA ", authority,
                          ".pem -CAkey ", authority, ".key -CAcreateserial -extfile ", base,
                          ".ext -out ", base, ".pem"));
}

namespace {

// hr-cloud in `region` on `listen`, its port written to `port_file`, then `flags`.
std::vector<std::string> CloudArgv(const std::string& region, const std::string& listen,
                                   const std::string& port_file,
                                   const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {HR_BIN_DIR "/hr-cloud", "--region=" + region,
                                   "--listen=" + listen, "--port_file=" + port_file};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// hr-device on a loopback port written to `port_file`, with the shipped policy
// and complexity model and `backends_file`, then `flags`.
std::vector<std::string> DeviceArgv(const std::string& backends_file, const std::string& port_file,
                                    const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {
      HR_BIN_DIR "/hr-device",       "--listen=127.0.0.1:0",
      "--port_file=" + port_file,    "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
      "--backends=" + backends_file, "--complexity_model=" HR_SOURCE_DIR "/models/complexity.pb"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// `first`, then `rest`.
std::vector<std::string> Joined(std::vector<std::string> first,
                                const std::vector<std::string>& rest) {
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

}  // namespace

CloudProcess::CloudProcess(const std::string& region, std::vector<std::string> flags,
                           const std::string& listen)
    : dir_(MakeTestDir()),
      process_(CloudArgv(region, listen, dir_ + "/port", Joined({"--engine=synthetic"}, flags)),
               dir_ + "/cloud.log"),
      port_(WaitForPort(process_, dir_ + "/port")),
      address_(absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port_)),
      stub_(v1::CloudInference::NewStub(
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()))) {}

DeviceProcess::DeviceProcess(const std::string& backends_file, std::vector<std::string> flags)
    : dir_(MakeTestDir()),
      process_(
          DeviceArgv(backends_file, dir_ + "/port", Joined({"--local_engine=synthetic"}, flags)),
          dir_ + "/device.log"),
      port_(WaitForPort(process_, dir_ + "/port")),
      stub_(v1::Router::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                                    grpc::InsecureChannelCredentials()))) {}

BackendSpec TlsBackend(const std::string& name, const std::string& region, const std::string& dir,
                       const std::string& certificate) {
  BackendSpec b{name, region};
  b.tls_cert_file = absl::StrCat(dir, "/", certificate, ".pem");
  b.tls_key_file = absl::StrCat(dir, "/", certificate, ".key");
  return b;
}

BackendSpec MutualTlsBackend(const std::string& name, const std::string& region,
                             const std::string& dir, const std::string& certificate,
                             const std::string& client_ca) {
  BackendSpec b = TlsBackend(name, region, dir, certificate);
  b.flags.push_back(absl::StrCat("--tls_client_ca_file=", dir, "/", client_ca, ".pem"));
  return b;
}

Topology::Topology(std::vector<BackendSpec> specs, std::vector<std::string> device_flags)
    : dir_(MakeTestDir()) {
  for (const BackendSpec& b : specs) {
    std::vector<std::string> flags = {"--record_requests=" + dir_ + "/" + b.name + ".received",
                                      "--engine=" + b.engine,
                                      "--model=" HR_TINY_MODEL,
                                      "--synthetic_echo",
                                      "--synthetic_tokens_per_second=0",
                                      "--context_tokens=1024"};
    if (!b.tls_cert_file.empty()) {
      flags.push_back("--tls_cert_file=" + b.tls_cert_file);
      flags.push_back("--tls_key_file=" + b.tls_key_file);
    }
    backends_[b.name] = std::make_unique<Process>(
        CloudArgv(b.region, "127.0.0.1:0", dir_ + "/" + b.name + ".port", Joined(flags, b.flags)),
        dir_ + "/" + b.name + ".log");
  }
  std::string backends_file;
  for (const BackendSpec& b : specs) {
    ports_[b.name] = WaitForPort(*backends_[b.name], dir_ + "/" + b.name + ".port");
    absl::StrAppend(&backends_file, "backends { name: \"", b.name,
                    "\" address: \"127.0.0.1:", ports_[b.name], "\" region: \"",
                    b.listed_region.empty() ? b.region : b.listed_region, "\" model_family: \"",
                    b.model_family, "\"",
                    b.device_tls == "-" ? "" : absl::StrCat(" tls { ", b.device_tls, " }"),
                    b.shared_stream ? " shared_stream: true" : "", " }\n");
  }
  std::ofstream(dir_ + "/backends.textproto") << backends_file;
  device_ = std::make_unique<Process>(
      DeviceArgv(dir_ + "/backends.textproto", dir_ + "/device.port",
                 Joined({"--model=" HR_TINY_MODEL, "--local_threads=1"}, device_flags)),
      dir_ + "/device.log");
  device_port_ = WaitForPort(*device_, dir_ + "/device.port");
  device_stub_ = v1::Router::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", device_port_),
                                                         grpc::InsecureChannelCredentials()));
}

Topology::~Topology() {
  device_.reset();
  backends_.clear();
}

std::unique_ptr<v1::CloudInference::Stub> Topology::BackendStub(const std::string& name) {
  return v1::CloudInference::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ports_.at(name)), grpc::InsecureChannelCredentials()));
}

std::string Topology::Received(const std::string& name) const {
  return ReadFile(dir_ + "/" + name + ".received");
}

void Topology::StopBackend(const std::string& name) { backends_.at(name)->Stop(SIGTERM); }

v1::GenerateRequest Request(const std::string& locale, const std::string& prompt, bool consent,
                            v1::RouteHint hint, int max_tokens) {
  v1::GenerateRequest r;
  r.set_locale(locale);
  r.set_cloud_consent(consent);
  r.set_hint(hint);
  auto* m = r.add_messages();
  m->set_role("user");
  m->set_content(prompt);
  r.mutable_options()->set_max_tokens(max_tokens);
  return r;
}

v1::CloudRequest CloudRequestTo(const std::string& jurisdiction,
                                const std::vector<std::string>& regions, const std::string& prompt,
                                int max_tokens) {
  v1::CloudRequest r;
  r.mutable_claim()->set_jurisdiction(jurisdiction);
  for (const std::string& region : regions) r.mutable_claim()->add_allowed_regions(region);
  auto* m = r.add_messages();
  m->set_role("user");
  m->set_content(prompt);
  if (max_tokens > 0) r.mutable_options()->set_max_tokens(max_tokens);
  return r;
}

Answer Generate(v1::Router::Stub* stub, const v1::GenerateRequest& request,
                absl::Duration timeout) {
  Answer a;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse r;
  while (reader->Read(&r)) {
    ++a.messages;
    if (r.has_route()) a.route = r.route();
    if (r.has_chunk()) a.text += r.chunk().text();
    if (r.has_done()) a.done = r.done();
  }
  a.status = reader->Finish();
  return a;
}

TestDnsServer::TestDnsServer() {
  fd_ = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

TestDnsServer::~TestDnsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void TestDnsServer::SetAddresses(std::vector<std::string> ipv4) {
  absl::MutexLock lock(&mu_);
  addresses_ = std::move(ipv4);
}

int TestDnsServer::a_queries() {
  absl::MutexLock lock(&mu_);
  return a_queries_;
}

void TestDnsServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    unsigned char query[512];
    sockaddr_in peer{};
    socklen_t peer_length = sizeof(peer);
    const ssize_t n =
        recvfrom(fd_, query, sizeof(query), 0, reinterpret_cast<sockaddr*>(&peer), &peer_length);
    if (n < 12) continue;
    // The question: a header of 12 bytes, the name as labels up to a zero
    // byte, then its type and class.
    size_t end = 12;
    while (end < static_cast<size_t>(n) && query[end] != 0) end += 1 + query[end];
    end += 5;
    if (end > static_cast<size_t>(n)) continue;
    const bool type_a = query[end - 4] == 0 && query[end - 3] == 1;
    std::string response(reinterpret_cast<const char*>(query), end);
    response[2] = static_cast<char>(0x81);  // a response to a recursive query
    response[3] = static_cast<char>(0x80);  // recursion available, no error
    response[6] = response[7] = response[8] = response[9] = response[10] = response[11] = 0;
    int answers = 0;
    if (type_a) {
      absl::MutexLock lock(&mu_);
      ++a_queries_;
      for (const std::string& a : addresses_) {
        in_addr ip{};
        if (inet_pton(AF_INET, a.c_str(), &ip) != 1) continue;
        // The question's name (a pointer to offset 12), type A, class IN, a
        // TTL of one second, four bytes of address.
        const unsigned char record[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4};
        response.append(reinterpret_cast<const char*>(record), sizeof(record));
        response.append(reinterpret_cast<const char*>(&ip.s_addr), 4);
        ++answers;
      }
    }
    response[7] = static_cast<char>(answers);
    sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&peer),
           peer_length);
  }
}

}  // namespace hr::testing
