#include "util/pem.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "util/text_proto.h"

namespace hr::util {

absl::Status CheckPem(absl::string_view pem, PemKind kind) {
  if (kind == PemKind::kCertificate) {
    if (absl::StrContains(pem, "-----BEGIN CERTIFICATE-----")) return absl::OkStatus();
    return absl::InvalidArgumentError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  // "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----"...
  if (absl::StrContains(pem, "PRIVATE KEY-----")) return absl::OkStatus();
  return absl::InvalidArgumentError("holds no PEM private key (PRIVATE KEY-----)");
}

absl::StatusOr<std::string> ReadPemFile(const std::string& path, PemKind kind) {
  absl::StatusOr<std::string> pem = ReadFile(path, kConfigFile);
  if (!pem.ok()) return pem.status();
  if (absl::Status checked = CheckPem(*pem, kind); !checked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " ", checked.message()));
  }
  return pem;
}

}  // namespace hr::util
