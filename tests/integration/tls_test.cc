// TLS between hr-device and hr-cloud: real processes on loopback, certificates
// made with openssl for each test.
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

std::string Trust(const std::string& dir, const std::string& ca, const std::string& name) {
  return absl::StrCat("ca_file: \"", dir, "/", ca, ".pem\" server_name: \"", name, "\"");
}

// Replaces `to` with a copy of `from` in one step, as a deployment tool would.
void ReplaceFile(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to + ".new");
  std::filesystem::rename(to + ".new", to);
}

// Sends a zh-CN request every 100 ms until one is served, for up to 10 s; the
// last answer.
Answer GenerateUntilServed(Topology& t) {
  Answer a;
  Eventually(
      [&] {
        a = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
        return a.status.ok();
      },
      absl::Seconds(10), absl::Milliseconds(100));
  return a;
}

TEST(TlsTest, BackendOverTlsServesWhenItsCertificateChecksOut) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificate(certs, "operator-ca", "cn-north-1.backend.test");
  BackendSpec b = TlsBackend("cn-a", "cn-north-1", certs, "cn-north-1.backend.test");
  b.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test");
  Topology t({b});

  Answer a = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.target(), v1::CLOUD);
  EXPECT_EQ(a.route.region(), "cn-north-1");
  EXPECT_EQ(a.route.backend(), "cn-a");
  EXPECT_FALSE(a.text.empty());
  EXPECT_TRUE(absl::StrContains(t.Received("cn-a"), "jurisdiction: \"cn\"")) << t.Received("cn-a");
  const std::string log = ReadFile(t.backend_process("cn-a").log_path());
  EXPECT_TRUE(absl::StrContains(log, "transport=tls")) << log;
  EXPECT_TRUE(absl::StrContains(log, "via=call client=- ")) << log;  // it asked for none
}

// Each backend here is allowed for zh-CN, and each can be connected to, but
// none with the transport its entry demands: the request must fail closed (the
// cn policy) without any of them receiving it.
TEST(TlsTest, NoBackendIsUsedOverATransportItsEntryDoesNotTrust) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "stranger-ca");
  MakeCertificate(certs, "stranger-ca", "cn-north-1.backend.test");
  MakeCertificate(certs, "operator-ca", "eu-west-1.backend.test");
  MakeCertificate(certs, "operator-ca", "cn-east-1.backend.test");

  // A certificate from an authority the device does not trust.
  BackendSpec stranger = TlsBackend("stranger", "cn-north-1", certs, "cn-north-1.backend.test");
  stranger.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test");
  // A trusted authority, but the certificate of another region's backend.
  BackendSpec other_name = TlsBackend("other-name", "cn-north-1", certs, "eu-west-1.backend.test");
  other_name.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test");
  // The entry says TLS; the backend speaks plaintext: never downgraded.
  BackendSpec plaintext{"plaintext", "cn-east-1"};
  plaintext.device_tls = Trust(certs, "operator-ca", "cn-east-1.backend.test");
  // The entry says plaintext; the backend speaks TLS.
  BackendSpec tls_only = TlsBackend("tls-only", "cn-east-1", certs, "cn-east-1.backend.test");
  Topology t({stranger, other_name, plaintext, tls_only});

  Answer a = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE) << a.status.error_message();
  EXPECT_TRUE(absl::StrContains(a.status.error_message(), "FAIL_CLOSED"))
      << a.status.error_message();
  for (const char* name : {"stranger", "other-name", "plaintext", "tls-only"}) {
    EXPECT_EQ(t.Received(name), "") << name;
  }
}

TEST(TlsTest, HrctlProbeReachesEachBackendAsHrDeviceDoes) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "stranger-ca");
  MakeCertificate(certs, "operator-ca", "cn-north-1.backend.test");
  MakeCertificate(certs, "stranger-ca", "cn-east-1.backend.test");
  BackendSpec good = TlsBackend("good", "cn-north-1", certs, "cn-north-1.backend.test");
  good.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test");
  BackendSpec bad = TlsBackend("bad", "cn-east-1", certs, "cn-east-1.backend.test");
  bad.device_tls = Trust(certs, "operator-ca", "cn-east-1.backend.test");
  BackendSpec plain{"plain", "eu-west-1"};
  Topology t({good, bad, plain});

  const std::string out = t.dir() + "/probe.txt";
  Process p({HR_BIN_DIR "/hrctl", "probe", "--timeout=5s",
             "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
             "--backends=" + t.dir() + "/backends.textproto"},
            out);
  EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 1);  // not every backend serves
  std::map<std::string, std::string> lines;
  for (absl::string_view line : absl::StrSplit(ReadFile(out), '\n', absl::SkipEmpty())) {
    lines[std::string(line.substr(0, line.find(' ')))] = std::string(line);
  }
  EXPECT_THAT(lines["good"], ::testing::MatchesRegex(".* tls .* SERVING"));
  EXPECT_THAT(lines["bad"], ::testing::MatchesRegex(".* tls .* UNAVAILABLE: .*"));
  EXPECT_THAT(lines["plain"], ::testing::MatchesRegex(".* plaintext .* SERVING"));
}

// Operators rotate certificate authorities by rewriting the CA file a backend
// entry names; hr-device must take the new one up without a signal.
TEST(TlsTest, DeviceTakesUpARotatedCaFileWithoutASignal) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "old-ca");
  MakeCertificateAuthority(certs, "new-ca");
  MakeCertificate(certs, "new-ca", "cn-north-1.backend.test");
  // The device still trusts the old authority; the backend already shows a
  // certificate from the new one.
  std::filesystem::copy_file(certs + "/old-ca.pem", certs + "/trusted.pem");
  BackendSpec b = TlsBackend("cn-a", "cn-north-1", certs, "cn-north-1.backend.test");
  b.device_tls = Trust(certs, "trusted", "cn-north-1.backend.test");
  Topology t({b}, {"--watch_interval=50ms"});

  Answer before = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  EXPECT_EQ(before.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << before.status.error_message();
  EXPECT_EQ(t.Received("cn-a"), "");

  ReplaceFile(certs + "/new-ca.pem", certs + "/trusted.pem");
  Answer after = GenerateUntilServed(t);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.route.region(), "cn-north-1");
  EXPECT_TRUE(absl::StrContains(ReadFile(t.device_process().log_path()),
                                certs + "/trusted.pem changed: reloading"))
      << ReadFile(t.device_process().log_path());
}

// Mutual TLS: the backend asks every client for a certificate from the device
// authority; hr-device shows the one its backends file names.
std::string Show(const std::string& dir, const std::string& certificate) {
  return absl::StrCat(" cert_file: \"", dir, "/", certificate, ".pem\" key_file: \"", dir, "/",
                      certificate, ".key\"");
}

TEST(TlsTest, BackendAskingForClientCertificatesServesADeviceItTrusts) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "device-ca");
  MakeCertificate(certs, "operator-ca", "cn-north-1.backend.test");
  MakeCertificate(certs, "device-ca", "device-1.test");
  BackendSpec b =
      MutualTlsBackend("cn-a", "cn-north-1", certs, "cn-north-1.backend.test", "device-ca");
  b.device_tls =
      Trust(certs, "operator-ca", "cn-north-1.backend.test") + Show(certs, "device-1.test");
  b.shared_stream = true;
  Topology t({b});

  Answer a = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.backend(), "cn-a");
  EXPECT_FALSE(a.text.empty());
  EXPECT_TRUE(absl::StrContains(t.Received("cn-a"), "jurisdiction: \"cn\"")) << t.Received("cn-a");
  const std::string log = ReadFile(t.backend_process("cn-a").log_path());
  EXPECT_TRUE(absl::StrContains(log, "transport=mtls")) << log;
  // The backend's log says which device certificate the request came with.
  EXPECT_TRUE(absl::StrContains(log, "via=stream client=device-1.test ")) << log;

  // hrctl probe connects as hr-device does, certificate included.
  const std::string out = t.dir() + "/probe.txt";
  Process p({HR_BIN_DIR "/hrctl", "probe", "--timeout=5s",
             "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
             "--backends=" + t.dir() + "/backends.textproto"},
            out);
  EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 0) << ReadFile(out);
  EXPECT_THAT(ReadFile(out), ::testing::ContainsRegex("cn-a .* tls .* SERVING"));
}

// Both backends are allowed for zh-CN and trust the device authority only: one
// gets no certificate from hr-device, the other one from another authority.
// Neither may serve, and the request fails closed (the cn policy).
TEST(TlsTest, BackendAskingForClientCertificatesRefusesDevicesWithoutOneItTrusts) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "device-ca");
  MakeCertificateAuthority(certs, "stranger-ca");
  MakeCertificate(certs, "operator-ca", "cn-north-1.backend.test");
  MakeCertificate(certs, "operator-ca", "cn-east-1.backend.test");
  MakeCertificate(certs, "stranger-ca", "device-1.test");
  BackendSpec none = MutualTlsBackend("no-certificate", "cn-north-1", certs,
                                      "cn-north-1.backend.test", "device-ca");
  none.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test");
  BackendSpec stranger = MutualTlsBackend("stranger-certificate", "cn-east-1", certs,
                                          "cn-east-1.backend.test", "device-ca");
  stranger.device_tls =
      Trust(certs, "operator-ca", "cn-east-1.backend.test") + Show(certs, "device-1.test");
  Topology t({none, stranger});

  Answer a = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE) << a.status.error_message();
  EXPECT_TRUE(absl::StrContains(a.status.error_message(), "FAIL_CLOSED"))
      << a.status.error_message();
  EXPECT_EQ(t.Received("no-certificate"), "");
  EXPECT_EQ(t.Received("stranger-certificate"), "");
}

// Operators renew device certificates by rewriting the files the backends file
// names; hr-device must show the new one without a signal.
TEST(TlsTest, DeviceTakesUpARenewedClientCertificateWithoutASignal) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "old-device-ca");
  MakeCertificateAuthority(certs, "device-ca");
  MakeCertificate(certs, "operator-ca", "cn-north-1.backend.test");
  MakeCertificate(certs, "old-device-ca", "old.test");
  MakeCertificate(certs, "device-ca", "new.test");
  for (const char* ext : {".pem", ".key"}) {
    std::filesystem::copy_file(certs + "/old.test" + ext, certs + "/device" + ext);
  }
  BackendSpec b =
      MutualTlsBackend("cn-a", "cn-north-1", certs, "cn-north-1.backend.test", "device-ca");
  b.device_tls = Trust(certs, "operator-ca", "cn-north-1.backend.test") + Show(certs, "device");
  Topology t({b}, {"--watch_interval=50ms"});

  Answer before = Generate(t.device(), Request("zh-CN", "请介绍一下长城"));
  EXPECT_EQ(before.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << before.status.error_message();
  EXPECT_EQ(t.Received("cn-a"), "");

  for (const char* ext : {".pem", ".key"}) {
    ReplaceFile(certs + "/new.test" + ext, certs + "/device" + ext);
  }
  Answer after = GenerateUntilServed(t);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.route.backend(), "cn-a");
  // Whichever of the two files the watcher saw change first names the reload.
  const std::string log = ReadFile(t.device_process().log_path());
  EXPECT_TRUE(absl::StrContains(log, certs + "/device.key changed: reloading") ||
              absl::StrContains(log, certs + "/device.pem changed: reloading"))
      << log;
}

TEST(TlsTest, CloudRefusesToStartWithHalfOrUnreadableTlsFlags) {
  const std::string dir = MakeTestDir();
  MakeCertificateAuthority(dir, "ca");
  const struct {
    std::vector<std::string> flags;
    std::string expected;
  } cases[] = {
      {{"--tls_cert_file=" + dir + "/ca.pem"}, "give both or neither"},
      {{"--tls_cert_file=" + dir + "/none.pem", "--tls_key_file=" + dir + "/ca.key"},
       "cannot read " + dir + "/none.pem"},
      {{"--tls_cert_file=" + dir + "/ca.pem", "--tls_key_file=" + dir + "/ca.ext"},
       "cannot read " + dir + "/ca.ext"},
      {{"--tls_client_ca_file=" + dir + "/ca.pem"}, "needs --tls_cert_file"},
      {{"--tls_cert_file=" + dir + "/ca.pem", "--tls_key_file=" + dir + "/ca.key",
        "--tls_client_ca_file=" + dir + "/none.pem"},
       "cannot read " + dir + "/none.pem"},
      // The key and the certificate swapped: each file names what it lacks.
      {{"--tls_cert_file=" + dir + "/ca.key", "--tls_key_file=" + dir + "/ca.pem"},
       dir + "/ca.key holds no PEM certificate (-----BEGIN CERTIFICATE-----)"},
      {{"--tls_cert_file=" + dir + "/ca.pem", "--tls_key_file=" + dir + "/ca.pem"},
       dir + "/ca.pem holds no PEM private key"},
  };
  int i = 0;
  for (const auto& c : cases) {
    std::vector<std::string> argv = {HR_BIN_DIR "/hr-cloud", "--region=cn-north-1",
                                     "--engine=synthetic", "--listen=127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    const std::string log = absl::StrCat(dir, "/", i++, ".log");
    Process p(argv, log);
    EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 2) << c.expected;
    EXPECT_TRUE(absl::StrContains(ReadFile(log), c.expected)) << ReadFile(log);
  }
}

}  // namespace
}  // namespace hr::testing
