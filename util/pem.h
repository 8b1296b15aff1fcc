#ifndef HYBRID_ROUTER_UTIL_PEM_H_
#define HYBRID_ROUTER_UTIL_PEM_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hr::util {

// What a PEM text must hold: a certificate (a chain, or the authorities to
// trust) or a private key (PKCS#8, RSA, EC...).
enum class PemKind { kCertificate, kPrivateKey };

// InvalidArgument "holds no PEM certificate (-----BEGIN CERTIFICATE-----)" when
// `pem` has no block of `kind`. Only the markers are looked at: whether the
// block parses is for TLS to say.
absl::Status CheckPem(absl::string_view pem, PemKind kind);

// Reads `path` as a configuration file (a regular file of at most 16 MiB) and
// checks it with CheckPem. Errors name the path.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, PemKind kind);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_PEM_H_
