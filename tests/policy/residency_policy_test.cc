#include "policy/residency_policy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace hr::policy {
namespace {

constexpr char kPolicy[] = R"pb(
  version: "test-1"
  regions { name: "cn-north-1" }
  regions { name: "eu-central-1" }
  regions { name: "us-east-1" }
  jurisdictions {
    id: "cn"
    countries: "CN"
    cloud { allowed_regions: "cn-north-1" allowed_model_families: "qwen" when_unavailable: FAIL_CLOSED }
    categories { category: CN_RESIDENT_ID action: REDACT }
  }
  jurisdictions {
    id: "eu"
    countries: ["DE", "FR"]
    cloud { allowed_regions: "eu-central-1" allowed_model_families: "qwen" consent_required: true when_unavailable: FALLBACK_LOCAL }
    categories { category: HEALTH action: LOCAL_ONLY }
  }
  jurisdictions {
    id: "us"
    countries: "US"
    cloud { allowed_regions: "us-east-1" allowed_model_families: "llama" when_unavailable: FALLBACK_LOCAL }
  }
  default_rule { id: "default" }
)pb";

constexpr char kBackends[] = R"pb(
  backends { name: "cn-a" address: "127.0.0.1:1" region: "cn-north-1" model_family: "qwen" }
  backends { name: "eu-a" address: "127.0.0.1:2" region: "eu-central-1" model_family: "qwen" }
  backends { name: "us-a" address: "127.0.0.1:3" region: "us-east-1" model_family: "llama" }
  backends { name: "us-qwen" address: "127.0.0.1:4" region: "us-east-1" model_family: "qwen" }
)pb";

template <typename M>
M Parse(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m));
  return m;
}

// ctest runs each test in its own process, several at once: every process
// writes into a directory of its own, removed at exit, so tests that use the
// same file name cannot overwrite each other's files.
std::string* process_temp_dir = nullptr;

const std::string& ProcessTempDir() {
  if (process_temp_dir == nullptr) {
    process_temp_dir = new std::string(::testing::TempDir() + "/residency_policy_test-XXXXXX");
    if (mkdtemp(process_temp_dir->data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    std::atexit([] { std::filesystem::remove_all(*process_temp_dir); });
  }
  return *process_temp_dir;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ProcessTempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ResidencyPolicyTest, CountriesPickTheirJurisdiction) {
  auto p = ResidencyPolicy::Create(Parse<v1::Policy>(kPolicy), Parse<v1::Backends>(kBackends));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->RuleForCountry("CN").id, "cn");
  EXPECT_EQ((*p)->RuleForCountry("FR").id, "eu");
  EXPECT_EQ((*p)->RuleForCountry("JP").id, "default");
  EXPECT_EQ((*p)->RuleForCountry("").id, "default");
  EXPECT_FALSE((*p)->default_rule().cloud_allowed);
  EXPECT_EQ((*p)->version(), "test-1");
}

TEST(ResidencyPolicyTest, BackendsForFiltersByRegionAndModelFamily) {
  auto p = ResidencyPolicy::Create(Parse<v1::Policy>(kPolicy), Parse<v1::Backends>(kBackends));
  ASSERT_TRUE(p.ok()) << p.status();
  auto us = (*p)->BackendsFor((*p)->RuleForCountry("US"));
  ASSERT_EQ(us.size(), 1u);  // us-qwen is in the region but of a family not allowed
  EXPECT_EQ(us[0]->name(), "us-a");
  auto cn = (*p)->BackendsFor((*p)->RuleForCountry("CN"));
  ASSERT_EQ(cn.size(), 1u);
  EXPECT_EQ(cn[0]->name(), "cn-a");
  EXPECT_TRUE((*p)->BackendsFor((*p)->default_rule()).empty());
}

TEST(ResidencyPolicyTest, CategoryActionsDefaultToAllow) {
  auto p = ResidencyPolicy::Create(Parse<v1::Policy>(kPolicy), Parse<v1::Backends>(kBackends));
  ASSERT_TRUE(p.ok());
  const JurisdictionRule& cn = (*p)->RuleForCountry("CN");
  EXPECT_EQ(cn.ActionFor(v1::CN_RESIDENT_ID), v1::REDACT);
  EXPECT_EQ(cn.ActionFor(v1::EMAIL), v1::ALLOW);
}

struct BadCase {
  const char* name;
  std::string policy_edit_from;  // replaced in kPolicy
  std::string policy_edit_to;
  std::string expected;          // substring of the error
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};

class InvalidPolicyTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(InvalidPolicyTest, IsRefusedWithFileLineAndReason) {
  const BadCase& c = GetParam();
  std::string policy = kPolicy;
  size_t at = policy.find(c.policy_edit_from);
  ASSERT_NE(at, std::string::npos) << c.policy_edit_from;
  policy.replace(at, c.policy_edit_from.size(), c.policy_edit_to);
  std::string ppath = WriteTemp(std::string(c.name) + ".policy", policy);
  std::string bpath = WriteTemp(std::string(c.name) + ".backends", kBackends);
  auto p = LoadResidencyPolicy(ppath, bpath);
  ASSERT_FALSE(p.ok()) << c.name;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(p.status().message());
  EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
  // Every problem names the file and a line.
  EXPECT_NE(msg.find(ppath + ":"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidPolicyTest,
    ::testing::Values(
        BadCase{"country_twice", R"(countries: ["DE", "FR"])", R"(countries: ["DE", "CN"])",
                "country CN is already in jurisdiction 'cn'"},
        BadCase{"empty_regions",
                R"(cloud { allowed_regions: "us-east-1" allowed_model_families: "llama")",
                R"(cloud { allowed_model_families: "llama")", "allowed_regions: is empty"},
        BadCase{"undeclared_region", R"(allowed_regions: "eu-central-1" allowed_model_families)",
                R"(allowed_regions: "eu-centrall-1" allowed_model_families)",
                "region 'eu-centrall-1' is not declared"},
        BadCase{"unknown_field", R"(version: "test-1")", "version: \"test-1\"\n  colour: 3",
                "colour"},
        BadCase{"unknown_enum", "when_unavailable: FAIL_CLOSED", "when_unavailable: FAIL_OPEN",
                "FAIL_OPEN"},
        BadCase{"no_countries", R"(countries: "US")", "", "no locale can reach"},
        BadCase{"redact_topic", "category: HEALTH action: LOCAL_ONLY",
                "category: HEALTH action: REDACT", "REDACT is not possible for HEALTH"},
        BadCase{"lower_country", R"(countries: "CN")", R"(countries: "cn")",
                "not an ISO 3166-1 alpha-2 code"},
        BadCase{"no_version", R"(version: "test-1")", "", "version: is required"},
        BadCase{"no_when_unavailable", "when_unavailable: FAIL_CLOSED", "",
                "when_unavailable: is required"},
        // Text and JSON both take an enum's number, and proto3 keeps numbers it
        // has no name for: the loader must refuse them, not act on them.
        BadCase{"numeric_when_unavailable", "when_unavailable: FAIL_CLOSED", "when_unavailable: 9",
                "when_unavailable: 9 is not an UnavailableAction"},
        BadCase{"numeric_action", "category: HEALTH action: LOCAL_ONLY",
                "category: HEALTH action: 7", "action: 7 is not a CategoryAction"},
        BadCase{"numeric_category", "category: HEALTH action: LOCAL_ONLY",
                "category: 1000 action: DENY", "category: 1000 is not a SensitiveCategory"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ResidencyPolicyTest, ReportsTheLineOfTheDuplicateCountry) {
  std::string policy = "version: \"v\"\nregions { name: \"r\" }\n"
                       "jurisdictions { id: \"a\" countries: \"DE\" }\n"
                       "jurisdictions {\n  id: \"b\"\n  countries: \"DE\"\n}\n"
                       "default_rule {}\n";
  auto p = LoadResidencyPolicy(WriteTemp("dup.policy", policy), WriteTemp("dup.backends", ""));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("dup.policy:6:"), absl::string_view::npos) << p.status();
}

TEST(ResidencyPolicyTest, BackendInUnknownRegionIsAnError) {
  std::string backends = std::string(kBackends) +
      R"pb(backends { name: "x" address: "a:1" region: "ap-south-1" model_family: "qwen" })pb";
  auto p = LoadResidencyPolicy(WriteTemp("r.policy", kPolicy), WriteTemp("r.backends", backends));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("region 'ap-south-1' is not declared"),
            absl::string_view::npos) << p.status();
  EXPECT_NE(p.status().message().find("r.backends:"), absl::string_view::npos) << p.status();
}

TEST(ResidencyPolicyTest, WarnsAboutAnAllowedRegionNoBackendServes) {
  std::string backends = R"pb(
    backends { name: "cn-a" address: "127.0.0.1:1" region: "cn-north-1" model_family: "qwen" }
  )pb";
  auto p = ResidencyPolicy::Create(Parse<v1::Policy>(kPolicy), Parse<v1::Backends>(backends));
  ASSERT_TRUE(p.ok()) << p.status();
  bool warned = false;
  for (const auto& w : (*p)->warnings()) warned |= w.find("'eu-central-1'") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(ResidencyPolicyTest, BackendInARegionNoJurisdictionAllowsIsAWarning) {
  v1::Policy policy = Parse<v1::Policy>(kPolicy);
  policy.mutable_jurisdictions(2)->clear_cloud();  // us becomes local-only
  auto p = ResidencyPolicy::Create(policy, Parse<v1::Backends>(kBackends));
  ASSERT_TRUE(p.ok()) << p.status();
  bool warned = false;
  for (const auto& w : (*p)->warnings()) warned |= w.find("backend 'us-a'") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_TRUE((*p)->BackendsFor((*p)->RuleForCountry("US")).empty());
}

constexpr char kPem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(ResidencyPolicyTest, TlsCaFileIsReadIntoTheLoadedBackends) {
  std::string ca = WriteTemp("ca.pem", kPem);
  std::string backends = absl::StrCat(
      "backends { name: \"cn-a\" address: \"cn.example:443\" region: \"cn-north-1\"\n",
      "  model_family: \"qwen\" tls { ca_file: \"", ca, "\" server_name: \"cn.backend\" } }\n");
  auto p = LoadResidencyPolicy(WriteTemp("t.policy", kPolicy), WriteTemp("t.backends", backends));
  ASSERT_TRUE(p.ok()) << p.status();
  const v1::Backend& b = (*p)->backends().backends(0);
  EXPECT_EQ(b.tls().ca_pem(), kPem);
  EXPECT_EQ(b.tls().server_name(), "cn.backend");
  // Read at load: a later change of the file does not reach this policy.
  std::ofstream(ca) << "changed";
  EXPECT_EQ((*p)->backends().backends(0).tls().ca_pem(), kPem);
}

constexpr char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

TEST(ResidencyPolicyTest, TlsClientCertificateAndKeyAreReadIntoTheLoadedBackends) {
  std::string cert = WriteTemp("device.pem", kPem);
  std::string key = WriteTemp("device.key", kKeyPem);
  std::string backends = absl::StrCat(
      "backends { name: \"cn-a\" address: \"cn.example:443\" region: \"cn-north-1\"\n",
      "  model_family: \"qwen\" tls { cert_file: \"", cert, "\" key_file: \"", key, "\" } }\n");
  auto p = LoadResidencyPolicy(WriteTemp("t.policy", kPolicy), WriteTemp("t.backends", backends));
  ASSERT_TRUE(p.ok()) << p.status();
  const v1::BackendTls& tls = (*p)->backends().backends(0).tls();
  EXPECT_EQ(tls.cert_pem(), kPem);
  EXPECT_EQ(tls.key_pem(), kKeyPem);
  EXPECT_EQ(tls.ca_pem(), "");  // the system's roots
}

TEST(ResidencyPolicyTest, TlsProblemsNameTheField) {
  const std::string not_pem = WriteTemp("not.pem", "hello\n");
  const std::string pem = WriteTemp("ok.pem", kPem);
  const std::string key = WriteTemp("ok.key", kKeyPem);
  const struct {
    std::string tls, expected;
  } cases[] = {
      {"ca_file: \"/nonexistent/ca.pem\"",
       "backends[0].tls.ca_file: cannot read /nonexistent/ca.pem"},
      {"ca_file: \"" + not_pem + "\"", "backends[0].tls.ca_file: holds no PEM certificate"},
      {"ca_pem: \"hello\"", "backends[0].tls.ca_pem: holds no PEM certificate"},
      {"ca_file: \"" + pem + "\" ca_pem: \"x\"",
       "backends[0].tls: give ca_file or ca_pem, not both"},
      {"cert_file: \"" + pem + "\"", "backends[0].tls: a client certificate"},
      {"key_pem: \"-----BEGIN PRIVATE KEY-----\"", "backends[0].tls: a client certificate"},
      // The key's text is not repeated in the error.
      {"cert_file: \"" + pem + "\" key_pem: \"secret-key-material\"",
       "backends[0].tls.key_pem: holds no PEM private key"},
      {"cert_file: \"/nonexistent/c.pem\" key_file: \"" + key + "\"",
       "backends[0].tls.cert_file: cannot read /nonexistent/c.pem"},
      {"cert_pem: \"x\" key_file: \"" + key + "\"",
       "backends[0].tls.cert_pem: holds no PEM certificate"},
      {"cert_file: \"" + pem + "\" key_file: \"" + pem + "\"",
       "backends[0].tls.key_file: holds no PEM private key"},
      {"cert_file: \"" + pem + "\" key_file: \"" + key + "\" key_pem: \"x\"",
       "backends[0].tls: give key_file or key_pem, not both"},
  };
  for (const auto& c : cases) {
    std::string backends =
        "backends { name: \"cn-a\" address: \"a:1\" region: \"cn-north-1\" "
        "model_family: \"qwen\" tls { " +
        c.tls + " } }";
    auto p = LoadResidencyPolicy(WriteTemp("p.policy", kPolicy), WriteTemp("p.backends", backends));
    ASSERT_FALSE(p.ok()) << c.tls;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(c.expected), absl::string_view::npos) << p.status();
    EXPECT_FALSE(absl::StrContains(p.status().message(), "secret-key-material")) << p.status();
  }
}

TEST(ResidencyPolicyTest, PlaintextBeyondThisMachineIsAWarning) {
  const struct {
    std::string address;
    bool tls, warned;
  } cases[] = {
      {"127.0.0.1:50061", false, false},
      {"localhost:1", false, false},
      {"dns:///localhost:1", false, false},
      {"[::1]:2", false, false},
      {"unix:/run/hr.sock", false, false},
      {"ipv4:127.0.0.2:3", false, false},
      {"ipv4:127.0.0.1:3,127.0.0.1:4", false, false},
      {"ipv6:[::1]:3,[::1]:4", false, false},
      {"ipv4:127.0.0.1:3,10.0.0.5:4", false, true},
      {"10.0.0.5:50061", false, true},
      {"dns:///hr.example.net:443", false, true},
      {"dns:///hr.example.net:443", true, false},
  };
  for (const auto& c : cases) {
    v1::Backends backends = Parse<v1::Backends>(
        R"pb(backends { name: "cn-a" region: "cn-north-1" model_family: "qwen" })pb");
    backends.mutable_backends(0)->set_address(c.address);
    if (c.tls) backends.mutable_backends(0)->mutable_tls();
    auto p = ResidencyPolicy::Create(Parse<v1::Policy>(kPolicy), backends);
    ASSERT_TRUE(p.ok()) << p.status();
    bool warned = false;
    for (const auto& w : (*p)->warnings()) warned |= w.find("in plaintext") != std::string::npos;
    EXPECT_EQ(warned, c.warned) << c.address << (c.tls ? " with tls" : "");
  }
}

TEST(ResidencyPolicyTest, MissingFileIsNotFound) {
  auto p = LoadResidencyPolicy("/nonexistent/policy.textproto", "/nonexistent/b");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
}

// A directory opens like a file but does not read: it is refused, never taken
// for an empty file (an empty ca_pem would mean "trust the system's roots").
TEST(ResidencyPolicyTest, DirectoryGivenAsAFileIsRefused) {
  const std::string dir = ProcessTempDir();
  auto p = LoadResidencyPolicy(dir, WriteTemp("d.backends", kBackends));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "cannot read " + dir + ": Is a directory"))
      << p.status();

  std::string backends =
      absl::StrCat("backends { name: \"cn-a\" address: \"cn.example:443\" region: \"cn-north-1\"\n",
                   "  model_family: \"qwen\" tls { ca_file: \"", dir, "\" } }\n");
  p = LoadResidencyPolicy(WriteTemp("d.policy", kPolicy), WriteTemp("d2.backends", backends));
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(),
                                "backends[0].tls.ca_file: cannot read " + dir + ": Is a directory"))
      << p.status();
}

TEST(ResidencyPolicyTest, AFifoADeviceOrAHugeFileIsRefusedWithoutHanging) {
  // Reading a FIFO would wait for a writer, at start-up or in the reload thread.
  const std::string fifo = ProcessTempDir() + "/policy.fifo";
  unlink(fifo.c_str());  // left by an earlier run of this test (--gtest_repeat)
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto p = LoadResidencyPolicy(fifo, WriteTemp("f.backends", kBackends));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StrContains(p.status().message(), "cannot read " + fifo + ": not a regular file"))
      << p.status();
  p = LoadResidencyPolicy(WriteTemp("f.policy", kPolicy), "/dev/zero");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "/dev/zero: not a regular file"))
      << p.status();
  // A comment line of 17 MiB: past the 16 MiB a configuration file may hold.
  p = LoadResidencyPolicy(WriteTemp("huge.policy", "#" + std::string(17 << 20, 'x')),
                          WriteTemp("f2.backends", kBackends));
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "larger than the limit of 16777216 bytes"))
      << p.status();
}

TEST(ResidencyPolicyTest, TheShippedExamplePolicyIsValid) {
  auto p = LoadResidencyPolicy(HR_SOURCE_DIR "/deploy/local/policy.textproto",
                               HR_SOURCE_DIR "/deploy/local/backends.textproto");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->RuleForCountry("CN").when_unavailable, v1::FAIL_CLOSED);
  EXPECT_EQ((*p)->RuleForCountry("IT").id, "eu");
  EXPECT_TRUE((*p)->RuleForCountry("IT").consent_required);
  EXPECT_EQ((*p)->RuleForCountry("IT").ActionFor(v1::HEALTH), v1::LOCAL_ONLY);
  EXPECT_FALSE((*p)->default_rule().cloud_allowed);
}

// The compliance team's tooling may write JSON: a file named *.json is read with
// protobuf's JSON mapping and means what the same textproto means.
TEST(ResidencyPolicyTest, JsonFilesMeanWhatTheirTextprotoMeans) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;  // a field a line, so that problems have lines to name
  std::string policy_json, backends_json;
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(Parse<v1::Policy>(kPolicy), &policy_json, options)
          .ok());
  // lowerCamel names, as other JSON tools write them, are read too.
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(Parse<v1::Backends>(kBackends), &backends_json)
          .ok());
  auto p = LoadResidencyPolicy(WriteTemp("j.policy.json", policy_json),
                               WriteTemp("j.backends.json", backends_json));
  ASSERT_TRUE(p.ok()) << p.status();
  auto text =
      LoadResidencyPolicy(WriteTemp("j.policy", kPolicy), WriteTemp("j.backends", kBackends));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ((*p)->version(), "test-1");
  for (const char* country : {"CN", "DE", "US", "JP"}) {
    const JurisdictionRule& from_json = (*p)->RuleForCountry(country);
    const JurisdictionRule& from_text = (*text)->RuleForCountry(country);
    EXPECT_EQ(from_json.id, from_text.id) << country;
    EXPECT_EQ(from_json.allowed_regions, from_text.allowed_regions) << country;
    EXPECT_EQ(from_json.when_unavailable, from_text.when_unavailable) << country;
    EXPECT_EQ(from_json.consent_required, from_text.consent_required) << country;
    EXPECT_EQ(from_json.allowed_model_families, from_text.allowed_model_families) << country;
    EXPECT_EQ(from_json.actions, from_text.actions) << country;
    std::vector<std::string> json_backends, text_backends;
    for (const auto* b : (*p)->BackendsFor(from_json)) json_backends.push_back(b->name());
    for (const auto* b : (*text)->BackendsFor(from_text)) text_backends.push_back(b->name());
    EXPECT_EQ(json_backends, text_backends) << country;
  }
  EXPECT_EQ((*p)->RuleForCountry("CN").when_unavailable, v1::FAIL_CLOSED);

  // Broken JSON, a field the schema does not have, a value it does not have and
  // a rule the validation refuses each name the file, the line and what is wrong.
  struct Bad {
    std::string file, text, where, why;
  };
  // "LINE:COLUMN" (1-based) of the first `needle` in `text`.
  auto where = [](const std::string& text, const std::string& needle) {
    const size_t at = text.find(needle);
    EXPECT_NE(at, std::string::npos) << needle;
    const size_t line_start = text.rfind('\n', at) + 1;  // npos + 1 == 0
    return absl::StrCat(std::count(text.begin(), text.begin() + at, '\n') + 1, ":",
                        at - line_start + 1);
  };
  const std::string backends_path = WriteTemp("bad.backends.json", backends_json);
  for (const Bad& bad : std::vector<Bad>{
           {"broken.json", "{\n  \"version\": \"x\",\n  \"regions\": [,]\n}", "3:15",
            "unexpected ','"},
           {"unknown.json", absl::StrReplaceAll(policy_json, {{"\"version\"", "\"versoin\""}}),
            where(policy_json, "\"version\""), "versoin"},
           {"enum.json", absl::StrReplaceAll(policy_json, {{"\"FAIL_CLOSED\"", "\"FAIL_OPEN\""}}),
            where(policy_json, "\"when_unavailable\""), "FAIL_OPEN"},
           {"dup.json", absl::StrReplaceAll(policy_json, {{"\"US\"", "\"CN\""}}),
            where(policy_json, "\"US\""),
            "jurisdictions[2].countries[0]: country CN is already in jurisdiction 'cn'"}}) {
    p = LoadResidencyPolicy(WriteTemp(bad.file, bad.text), backends_path);
    ASSERT_FALSE(p.ok()) << bad.file;
    EXPECT_TRUE(
        absl::StrContains(p.status().message(), absl::StrCat(bad.file, ":", bad.where, ": ")))
        << bad.where << " in " << p.status();
    EXPECT_TRUE(absl::StrContains(p.status().message(), bad.why)) << p.status();
  }
}

TEST(CheckResidencyClaimTest, RefusesAClaimWithoutTheRegion) {
  EXPECT_TRUE(CheckResidencyClaim({"cn-north-1", "cn-east-1"}, "cn-east-1").ok());
  EXPECT_EQ(CheckResidencyClaim({"eu-central-1"}, "cn-east-1").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckResidencyClaim({}, "cn-east-1").code(), absl::StatusCode::kFailedPrecondition);
  // The claimed regions are the caller's: the refusal (which the backend logs)
  // shows a few of them, escaped.
  std::vector<std::string> forged = {"x\nfake log line"};
  forged.resize(10000, std::string(1000, 'r'));
  absl::Status s = CheckResidencyClaim(forged, "cn-east-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(absl::StrContains(s.message(), "\n")) << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(), "(x\\nfake log line, rrrr")) << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(), "..., and 9992 more) does not allow")) << s.message();
  EXPECT_LT(s.message().size(), 1000u);
}

TEST(CheckClaimAgainstPolicyTest, ThePolicyDecidesNotTheClaim) {
  auto policy = LoadResidencyPolicy(HR_SOURCE_DIR "/deploy/local/policy.textproto", "");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ((*policy)->backends().backends_size(), 0);
  const ResidencyPolicy& p = **policy;
  EXPECT_TRUE(CheckClaimAgainstPolicy(p, "cn", "CN", "cn-east-1", "qwen").ok());
  EXPECT_TRUE(CheckClaimAgainstPolicy(p, "cn", "cn", "cn-east-1", "").ok());
  EXPECT_TRUE(CheckClaimAgainstPolicy(p, "eu", "FR", "eu-west-1", "llama").ok());
  {
    // A default rule that allows the cloud serves what names no country (or an
    // unlisted one).
    v1::Policy open = Parse<v1::Policy>(absl::StrReplaceAll(
        kPolicy, {{R"(default_rule { id: "default" })",
                   R"(default_rule { id: "default" cloud { allowed_regions: "us-east-1" )"
                   R"(allowed_model_families: "llama" when_unavailable: FAIL_CLOSED } })"}}));
    auto world = ResidencyPolicy::Create(open, v1::Backends());
    ASSERT_TRUE(world.ok()) << world.status();
    EXPECT_TRUE(CheckClaimAgainstPolicy(**world, "default", "", "us-east-1", "llama").ok());
    EXPECT_TRUE(CheckClaimAgainstPolicy(**world, "default", "JP", "us-east-1", "llama").ok());
    EXPECT_FALSE(CheckClaimAgainstPolicy(**world, "us", "", "us-east-1", "llama").ok());
  }
  auto refused = [&p](absl::string_view j, absl::string_view country, absl::string_view region,
                      absl::string_view family) {
    absl::Status s = CheckClaimAgainstPolicy(p, j, country, region, family);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << j << " " << region;
    return std::string(s.message());
  };
  EXPECT_TRUE(absl::StrContains(refused("cn", "CN", "us-east-1", "qwen"),
                                "does not allow jurisdiction 'cn' in region 'us-east-1'"));
  EXPECT_TRUE(absl::StrContains(refused("cn", "CN", "cn-east-1", "llama"),
                                "does not allow jurisdiction 'cn' on model family 'llama'"));
  EXPECT_TRUE(absl::StrContains(refused("eu", "CN", "eu-west-1", ""), "puts it in 'cn'"));
  // No country is the default rule's, as on the device: not eu's.
  EXPECT_TRUE(absl::StrContains(refused("eu", "", "eu-west-1", "llama"),
                                "the claim names no country, which this backend's policy "
                                "(version "));
  EXPECT_TRUE(absl::StrContains(refused("eu", "", "eu-west-1", "llama"),
                                "puts in 'default', not in jurisdiction 'eu'"));
  EXPECT_TRUE(absl::StrContains(refused("eu", "FR", "eu-west-1", "mistral"), "model family"));
  // The default rule keeps everything on the device.
  EXPECT_TRUE(absl::StrContains(refused("default", "", "us-east-1", ""), "'default'"));
  EXPECT_TRUE(absl::StrContains(refused("default", "JP", "us-east-1", ""), "'default'"));
  // What the caller wrote comes back escaped and cut short.
  const std::string forged = "x\nfake log line " + std::string(200, 'y');
  std::string message = refused(forged, "", "us-east-1", "");
  EXPECT_FALSE(absl::StrContains(message, "\n")) << message;
  EXPECT_TRUE(absl::StrContains(message, "x\\nfake log line")) << message;
  EXPECT_LT(message.size(), 200u) << message;
  EXPECT_TRUE(absl::StrContains(refused("eu", "F\n", "eu-west-1", ""), "'F\\n' is not an ISO"));
}

}  // namespace
}  // namespace hr::policy
