#include "policy/residency_policy.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "re2/re2.h"
#include "util/log_format.h"
#include "util/pem.h"
#include "util/proto_enum.h"
#include "util/text_proto.h"

namespace hr::policy {
namespace {

using Positions = util::ConfigPositions;

// Where a config message came from, so that problems can name file and line.
struct Source {
  std::string file;                 // empty for in-memory configs
  const Positions* tree = nullptr;  // null when the positions are unknown
};

// Descends into a nested message's positions; null in, null out.
const Positions* Nested(const Positions* tree, const char* field, int index) {
  if (tree == nullptr) return nullptr;
  return tree->Nested(field, index);
}

std::string Where(const std::string& file, const Positions* tree, const char* field, int index) {
  if (file.empty()) return "";
  const Positions::Location at = tree != nullptr ? tree->Get(field, index) : Positions::Location{};
  return absl::StrCat(util::FileAndLine(file, at), ": ");
}

}  // namespace

bool IsIdentifierCategory(v1::SensitiveCategory category) {
  return category != v1::HEALTH && category != v1::FINANCIAL &&
         category != v1::SENSITIVE_CATEGORY_UNSPECIFIED;
}

bool JurisdictionRule::AllowsRegion(absl::string_view region) const {
  return std::binary_search(allowed_regions.begin(), allowed_regions.end(), region);
}

bool JurisdictionRule::AllowsModelFamily(absl::string_view family) const {
  return std::binary_search(allowed_model_families.begin(),
                            allowed_model_families.end(), family);
}

// Validates a policy and backends list and compiles them; reports every problem.
class PolicyBuilder {
 public:
  PolicyBuilder(Source policy_src, Source backends_src)
      : psrc_(std::move(policy_src)), bsrc_(std::move(backends_src)) {}

  absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> Build(const v1::Policy& policy,
                                                               v1::Backends backends) {
    auto out = std::shared_ptr<ResidencyPolicy>(new ResidencyPolicy());
    const Positions* ptree = psrc_.tree;

    if (policy.version().empty()) {
      Problem(Where(psrc_.file, ptree, "version", -1), "version",
              "is required (it names the policy in every decision)");
    }
    out->version_ = policy.version();

    for (int i = 0; i < policy.regions_size(); ++i) {
      const std::string& name = policy.regions(i).name();
      std::string where = Where(psrc_.file, ptree, "regions", i);
      std::string path = absl::StrCat("regions[", i, "].name");
      if (!RE2::FullMatch(name, *kRegionName)) {
        Problem(where, path, absl::StrCat("'", name, "' is not a region name ([a-z0-9][a-z0-9-]*)"));
      } else if (!regions_.insert(name).second) {
        Problem(where, path, absl::StrCat("region '", name, "' is declared twice"));
      }
    }

    absl::flat_hash_map<std::string, std::string> country_owner;
    absl::flat_hash_set<std::string> ids;
    for (int i = 0; i < policy.jurisdictions_size(); ++i) {
      const v1::Jurisdiction& j = policy.jurisdictions(i);
      std::string path = absl::StrCat("jurisdictions[", i, "]");
      const Positions* jtree = Nested(ptree, "jurisdictions", i);
      std::string jwhere = Where(psrc_.file, ptree, "jurisdictions", i);
      if (!RE2::FullMatch(j.id(), *kJurisdictionId)) {
        Problem(jwhere, path + ".id",
                absl::StrCat("'", j.id(), "' is not a jurisdiction id ([a-z][a-z0-9_-]*)"));
      } else if (j.id() == "default") {
        Problem(jwhere, path + ".id", "'default' is reserved for default_rule");
      } else if (!ids.insert(j.id()).second) {
        Problem(jwhere, path + ".id", absl::StrCat("jurisdiction '", j.id(), "' is defined twice"));
      }
      if (j.countries().empty()) {
        Problem(jwhere, path + ".countries",
                "is empty, so no locale can reach this jurisdiction");
      }
      for (int k = 0; k < j.countries_size(); ++k) {
        const std::string& c = j.countries(k);
        std::string where = Where(psrc_.file, jtree, "countries", k);
        std::string cpath = absl::StrCat(path, ".countries[", k, "]");
        if (!RE2::FullMatch(c, *kCountryCode)) {
          Problem(where, cpath, absl::StrCat("'", c, "' is not an ISO 3166-1 alpha-2 code in upper case"));
          continue;
        }
        auto [it, inserted] = country_owner.emplace(c, j.id());
        if (!inserted) {
          Problem(where, cpath, absl::StrCat("country ", c, " is already in jurisdiction '",
                                             it->second, "'"));
        } else {
          out->country_to_rule_[c] = out->rules_.size();
        }
      }
      out->rules_.push_back(CompileRule(j, path, jwhere, jtree));
    }

    if (!policy.has_default_rule()) {
      Problem(Where(psrc_.file, ptree, "default_rule", -1), "default_rule",
              "is required (it covers locales without a listed country)");
      v1::Jurisdiction local_only;
      local_only.set_id("default");
      out->rules_.push_back(CompileRule(local_only, "default_rule", "", nullptr));
    } else {
      const v1::Jurisdiction& d = policy.default_rule();
      std::string where = Where(psrc_.file, ptree, "default_rule", -1);
      const Positions* dtree = Nested(ptree, "default_rule", -1);
      if (!d.id().empty() && d.id() != "default") {
        Problem(where, "default_rule.id", absl::StrCat("must be 'default' or empty, not '", d.id(), "'"));
      }
      if (!d.countries().empty()) {
        Problem(where, "default_rule.countries",
                "must be empty: the default rule covers every unlisted country");
      }
      out->rules_.push_back(CompileRule(d, "default_rule", where, dtree));
      out->rules_.back().id = "default";
    }

    CheckBackends(backends, *out);
    if (!problems_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid configuration (", problems_.size(), " problem",
          problems_.size() == 1 ? "" : "s", "):\n", absl::StrJoin(problems_, "\n")));
    }
    out->backends_ = std::move(backends);
    out->warnings_ = std::move(warnings_);
    return std::shared_ptr<const ResidencyPolicy>(std::move(out));
  }

 private:
  static inline const RE2* const kRegionName = new RE2("[a-z0-9][a-z0-9-]*");
  static inline const RE2* const kJurisdictionId = new RE2("[a-z][a-z0-9_-]*");
  static inline const RE2* const kCountryCode = new RE2("[A-Z]{2}");

  void Problem(const std::string& where, const std::string& path, const std::string& what) {
    problems_.push_back(absl::StrCat(where, path, ": ", what));
  }

  JurisdictionRule CompileRule(const v1::Jurisdiction& j, const std::string& path,
                               const std::string& jwhere, const Positions* jtree) {
    JurisdictionRule rule;
    rule.id = j.id();
    rule.actions.fill(v1::ALLOW);
    for (int k = 0; k < j.categories_size(); ++k) {
      const v1::CategoryRule& cr = j.categories(k);
      std::string where = Where(psrc_.file, jtree, "categories", k);
      std::string cpath = absl::StrCat(path, ".categories[", k, "]");
      if (cr.category() == v1::SENSITIVE_CATEGORY_UNSPECIFIED) {
        Problem(where, cpath + ".category", "is required");
        continue;
      }
      // The zero values are not named: they are refused above as missing.
      if (std::string why = util::NotAnEnumValue(v1::SensitiveCategory_descriptor(), cr.category(),
                                                 /*list_zero=*/false);
          !why.empty()) {
        Problem(where, cpath + ".category", why);
        continue;
      }
      if (cr.action() == v1::CATEGORY_ACTION_UNSPECIFIED) {
        Problem(where, cpath + ".action", "is required");
        continue;
      }
      if (std::string why = util::NotAnEnumValue(v1::CategoryAction_descriptor(), cr.action(),
                                                 /*list_zero=*/false);
          !why.empty()) {
        Problem(where, cpath + ".action", why);
        continue;
      }
      if (cr.action() == v1::REDACT && !IsIdentifierCategory(cr.category())) {
        Problem(where, cpath + ".action",
                absl::StrCat("REDACT is not possible for ",
                             v1::SensitiveCategory_Name(cr.category()),
                             " (a topic, not a span): use ALLOW, LOCAL_ONLY or DENY"));
      }
      bool seen = false;
      for (int m = 0; m < k; ++m) seen |= j.categories(m).category() == cr.category();
      if (seen) {
        Problem(where, cpath + ".category",
                absl::StrCat(v1::SensitiveCategory_Name(cr.category()), " is listed twice"));
      }
      rule.actions[cr.category()] = cr.action();
    }
    if (!j.has_cloud()) return rule;

    const v1::CloudRule& cloud = j.cloud();
    const Positions* ctree = Nested(jtree, "cloud", -1);
    std::string cwhere = jtree ? Where(psrc_.file, jtree, "cloud", -1) : jwhere;
    std::string cpath = path + ".cloud";
    rule.cloud_allowed = true;
    if (cloud.allowed_regions().empty()) {
      Problem(cwhere, cpath + ".allowed_regions",
              "is empty: list at least one region, or remove `cloud` to keep the jurisdiction local-only");
    }
    for (int k = 0; k < cloud.allowed_regions_size(); ++k) {
      const std::string& r = cloud.allowed_regions(k);
      if (!regions_.contains(r)) {
        Problem(Where(psrc_.file, ctree, "allowed_regions", k),
                absl::StrCat(cpath, ".allowed_regions[", k, "]"),
                absl::StrCat("region '", r, "' is not declared in `regions`"));
      }
      rule.allowed_regions.push_back(r);
      allowed_anywhere_.insert(r);
    }
    if (cloud.allowed_model_families().empty()) {
      Problem(cwhere, cpath + ".allowed_model_families", "is empty: list at least one model family");
    }
    rule.allowed_model_families.assign(cloud.allowed_model_families().begin(),
                                       cloud.allowed_model_families().end());
    if (cloud.when_unavailable() == v1::UNAVAILABLE_ACTION_UNSPECIFIED) {
      Problem(cwhere, cpath + ".when_unavailable", "is required: FALLBACK_LOCAL or FAIL_CLOSED");
    } else if (std::string why =
                   util::NotAnEnumValue(v1::UnavailableAction_descriptor(),
                                        cloud.when_unavailable(), /*list_zero=*/false);
               !why.empty()) {
      Problem(cwhere, cpath + ".when_unavailable", why);
    }
    rule.consent_required = cloud.consent_required();
    rule.when_unavailable = cloud.when_unavailable();
    for (auto* v : {&rule.allowed_regions, &rule.allowed_model_families}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    return rule;
  }

  // Whether a gRPC target names this machine only ("127.0.0.1:50061",
  // "dns:///localhost:1", "[::1]:2", "unix:/run/x.sock", "ipv4:127.0.0.1:1,127.0.0.1:2").
  static bool IsLoopback(absl::string_view target) {
    if (absl::StartsWith(target, "unix:")) return true;
    if (absl::ConsumePrefix(&target, "ipv4:") || absl::ConsumePrefix(&target, "ipv6:")) {
      // A list of addresses: all of them must be this machine's.
      for (absl::string_view address : absl::StrSplit(target, ',')) {
        if (!IsLoopbackAddress(address)) return false;
      }
      return true;
    }
    if (!absl::ConsumePrefix(&target, "dns:///")) absl::ConsumePrefix(&target, "dns:");
    return IsLoopbackAddress(target);
  }

  // Whether `host:port` (or `[v6]:port`, or a host alone) is this machine.
  static bool IsLoopbackAddress(absl::string_view target) {
    absl::string_view host = target;
    if (absl::ConsumePrefix(&host, "[")) {
      host = host.substr(0, host.find(']'));
    } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
      host = host.substr(0, colon);
    }
    return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
  }

  // Reads `<name>_file` (`file`) into `<name>_pem` (`pem`) when it is given, and
  // checks that the PEM text holds a block of `kind`.
  void ReadPem(const std::string& where, const std::string& path, const std::string& name,
               const std::string& file, std::string* pem, util::PemKind kind) {
    if (!file.empty() && !pem->empty()) {
      Problem(where, path, absl::StrCat("give ", name, "_file or ", name, "_pem, not both"));
      return;
    }
    if (!file.empty()) {
      absl::StatusOr<std::string> read = util::ReadFile(file, util::kConfigFile);
      if (!read.ok()) {
        Problem(where, absl::StrCat(path, ".", name, "_file"),
                std::string(read.status().message()));
        return;
      }
      *pem = *std::move(read);
    }
    if (pem->empty()) return;
    if (absl::Status checked = util::CheckPem(*pem, kind); !checked.ok()) {
      Problem(where, absl::StrCat(path, ".", name, file.empty() ? "_pem" : "_file"),
              std::string(checked.message()));
    }
  }

  // Reads `ca_file`, `cert_file` and `key_file` into `ca_pem`, `cert_pem` and
  // `key_pem`, so that what hr-device trusts and shows is what was checked here,
  // until the next load.
  void CheckTls(const std::string& where, const std::string& path, v1::BackendTls* tls) {
    ReadPem(where, path, "ca", tls->ca_file(), tls->mutable_ca_pem(), util::PemKind::kCertificate);
    ReadPem(where, path, "cert", tls->cert_file(), tls->mutable_cert_pem(),
            util::PemKind::kCertificate);
    ReadPem(where, path, "key", tls->key_file(), tls->mutable_key_pem(),
            util::PemKind::kPrivateKey);
    const bool cert = !tls->cert_file().empty() || !tls->cert_pem().empty();
    const bool key = !tls->key_file().empty() || !tls->key_pem().empty();
    if (cert != key) {
      Problem(where, path,
              "a client certificate (cert_file or cert_pem) and its private key (key_file or "
              "key_pem) go together: give both or neither");
    }
  }

  // Checks `backends` and completes it for use (see CheckTls).
  void CheckBackends(v1::Backends& backends, const ResidencyPolicy& policy) {
    absl::flat_hash_set<std::string> names;
    for (int i = 0; i < backends.backends_size(); ++i) {
      v1::Backend& b = *backends.mutable_backends(i);
      std::string where = Where(bsrc_.file, bsrc_.tree, "backends", i);
      std::string path = absl::StrCat("backends[", i, "]");
      if (b.name().empty()) {
        Problem(where, path + ".name", "is required");
      } else if (!names.insert(b.name()).second) {
        Problem(where, path + ".name", absl::StrCat("backend '", b.name(), "' is defined twice"));
      }
      if (b.address().empty()) Problem(where, path + ".address", "is required");
      if (b.model_family().empty()) Problem(where, path + ".model_family", "is required");
      if (b.has_tls()) {
        CheckTls(where, path + ".tls", b.mutable_tls());
      } else if (!b.address().empty() && !IsLoopback(b.address())) {
        warnings_.push_back(absl::StrCat("backend '", b.name(), "' (", b.address(),
                                         ") is reached in plaintext: give it a tls block "
                                         "unless the network to it is private"));
      }
      if (!regions_.contains(b.region())) {
        Problem(where, path + ".region",
                absl::StrCat("region '", b.region(), "' is not declared in the policy's `regions`"));
      } else if (!allowed_anywhere_.contains(b.region())) {
        // A warning, not an error: compliance may take a region out of every
        // jurisdiction without waiting for operations to change this file.
        warnings_.push_back(absl::StrCat("backend '", b.name(), "': region '", b.region(),
                                         "' is allowed by no jurisdiction; it will not be used"));
      }
    }
    for (const JurisdictionRule& rule : policy.rules_) {
      for (const std::string& region : rule.allowed_regions) {
        bool served = false;
        for (const v1::Backend& b : backends.backends()) {
          served |= b.region() == region && rule.AllowsModelFamily(b.model_family());
        }
        if (!served) {
          warnings_.push_back(absl::StrCat("jurisdiction '", rule.id, "' allows region '",
                                           region, "' but no backend of an allowed model family serves it"));
        }
      }
    }
  }

  Source psrc_, bsrc_;
  absl::flat_hash_set<std::string> regions_;
  absl::flat_hash_set<std::string> allowed_anywhere_;
  std::vector<std::string> problems_;
  std::vector<std::string> warnings_;
};

absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> ResidencyPolicy::Create(
    const v1::Policy& policy, const v1::Backends& backends) {
  return PolicyBuilder(Source{}, Source{}).Build(policy, backends);
}

const JurisdictionRule& ResidencyPolicy::RuleForCountry(absl::string_view country) const {
  auto it = country_to_rule_.find(country);
  return it == country_to_rule_.end() ? default_rule() : rules_[it->second];
}

const JurisdictionRule* ResidencyPolicy::RuleById(absl::string_view id) const {
  for (const JurisdictionRule& rule : rules_) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

const JurisdictionRule& ResidencyPolicy::RuleFor(const Locale& locale) const {
  return RuleForCountry(locale.country());
}

std::vector<const v1::Backend*> ResidencyPolicy::BackendsFor(
    const JurisdictionRule& rule) const {
  std::vector<const v1::Backend*> out;
  if (!rule.cloud_allowed) return out;
  for (const v1::Backend& b : backends_.backends()) {
    if (rule.AllowsRegion(b.region()) && rule.AllowsModelFamily(b.model_family())) {
      out.push_back(&b);
    }
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> LoadResidencyPolicy(
    const std::string& policy_path, const std::string& backends_path) {
  absl::StatusOr<std::string> policy_text = util::ReadFile(policy_path, util::kConfigFile);
  if (!policy_text.ok()) return policy_text.status();
  absl::StatusOr<std::string> backends_text =
      backends_path.empty() ? std::string() : util::ReadFile(backends_path, util::kConfigFile);
  if (!backends_text.ok()) return backends_text.status();
  return ParseResidencyPolicy(policy_path, *policy_text, backends_path, *backends_text);
}

absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> ParseResidencyPolicy(
    const std::string& policy_path, const std::string& policy_text,
    const std::string& backends_path, const std::string& backends_text) {
  std::vector<std::string> problems;
  v1::Policy policy;
  v1::Backends backends;
  Positions policy_tree, backends_tree;
  bool ok = util::ParseConfig(policy_path, policy_text, &policy, &problems, &policy_tree);
  ok &= util::ParseConfig(backends_path, backends_text, &backends, &problems, &backends_tree);
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse configuration:\n", absl::StrJoin(problems, "\n")));
  }
  return PolicyBuilder(Source{policy_path, &policy_tree},
                       Source{backends_path, &backends_tree})
      .Build(policy, backends);
}

absl::Status CheckResidencyClaim(const std::vector<std::string>& allowed_regions,
                                 absl::string_view region) {
  if (allowed_regions.empty()) {
    return absl::FailedPreconditionError(
        "residency claim lists no allowed region; refusing to process");
  }
  if (std::find(allowed_regions.begin(), allowed_regions.end(), region) ==
      allowed_regions.end()) {
    // The claimed regions are the caller's: escaped, and at most a few of them.
    constexpr size_t kShown = 8;
    std::vector<std::string> shown;
    for (size_t i = 0; i < allowed_regions.size() && i < kShown; ++i) {
      shown.push_back(util::ForLog(allowed_regions[i]));
    }
    if (allowed_regions.size() > kShown) {
      shown.push_back(absl::StrCat("and ", allowed_regions.size() - kShown, " more"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("this backend runs in region '", region, "', which the residency claim (",
                     absl::StrJoin(shown, ", "), ") does not allow"));
  }
  return absl::OkStatus();
}

absl::Status CheckClaimAgainstPolicy(const ResidencyPolicy& policy, absl::string_view jurisdiction,
                                     absl::string_view country, absl::string_view region,
                                     absl::string_view model_family) {
  const std::string ours = absl::StrCat("this backend's policy (version ", policy.version(), ")");
  const std::string claimed = util::ForLog(jurisdiction);
  const JurisdictionRule* rule = policy.RuleById(jurisdiction);
  if (rule == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the claimed jurisdiction '", claimed, "' is not in ", ours));
  }
  if (country.empty()) {
    // A locale without a country gets the default rule, on the device as here.
    if (rule != &policy.default_rule()) {
      return absl::FailedPreconditionError(absl::StrCat("the claim names no country, which ", ours,
                                                        " puts in '", policy.default_rule().id,
                                                        "', not in jurisdiction '", claimed, "'"));
    }
  } else {
    if (country.size() != 2 || !absl::ascii_isalpha(country[0]) ||
        !absl::ascii_isalpha(country[1])) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the claim's country '", util::ForLog(country), "' is not an ISO 3166-1 alpha-2 code"));
    }
    const JurisdictionRule& of_country = policy.RuleForCountry(absl::AsciiStrToUpper(country));
    if (of_country.id != rule->id) {
      return absl::FailedPreconditionError(absl::StrCat("the claim puts country ", country,
                                                        " in jurisdiction '", claimed, "', but ",
                                                        ours, " puts it in '", of_country.id, "'"));
    }
  }
  if (!rule->cloud_allowed || !rule->AllowsRegion(region)) {
    return absl::FailedPreconditionError(absl::StrCat(ours, " does not allow jurisdiction '",
                                                      claimed, "' in region '", region, "'"));
  }
  if (!model_family.empty() && !rule->AllowsModelFamily(model_family)) {
    return absl::FailedPreconditionError(absl::StrCat(
        ours, " does not allow jurisdiction '", claimed, "' on model family '", model_family, "'"));
  }
  return absl::OkStatus();
}

}  // namespace hr::policy
