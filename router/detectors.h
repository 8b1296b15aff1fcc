#ifndef HYBRID_ROUTER_ROUTER_DETECTORS_H_
#define HYBRID_ROUTER_ROUTER_DETECTORS_H_

#include <cstddef>
#include "absl/strings/string_view.h"
#include <vector>

#include "hybridrouter/v1/common.pb.h"

namespace hr::router {

namespace v1 = ::hybridrouter::v1;

// A run of bytes [start, end) of a text that holds an identifier.
struct Span {
  v1::SensitiveCategory category;
  size_t start;
  size_t end;
  bool operator==(const Span& o) const {
    return category == o.category && start == o.start && end == o.end;
  }
};

// Finds structured identifiers in UTF-8 text: e-mail addresses, phone numbers
// (international, North American and mainland-China mobile), mainland-China
// resident ID numbers (GB 11643 check digit), payment card numbers (Luhn), IBANs
// (ISO 13616 mod 97), US SSNs (SSA-valid ranges) and IPv4/IPv6 addresses.
// Candidates whose format has a checksum or valid ranges are kept only when they
// pass it. Digits, Latin letters and '@' typed in their full-width forms
// ("１３８…", as CJK input methods in full-width mode write them) count as the
// ASCII they stand for; spans are still offsets into the text as given. Names and
// street addresses are not detected.
//
// All patterns are RE2 (linear time). One pass over the text with all of them at
// once (an RE2::Set) tells which can match; only those are then run to find where.
// Thread-safe; build once, share.
class Detectors {
 public:
  struct Options {
    // Off: run every pattern, as if the one-pass check had matched them all.
    // Same results, slower; for tests that check the two agree.
    bool prefilter = true;
  };
  Detectors() : Detectors(Options{}) {}
  explicit Detectors(Options options);
  Detectors(const Detectors&) = delete;
  Detectors& operator=(const Detectors&) = delete;

  // Spans sorted by start, non-overlapping (on overlap, the longer span wins;
  // on equal length, the category with the stronger check).
  std::vector<Span> FindSpans(absl::string_view text) const;

  // Topic signals from keywords, English and Chinese.
  bool MentionsHealth(absl::string_view text) const;
  bool MentionsFinance(absl::string_view text) const;

  // FindSpans, MentionsHealth and MentionsFinance together, for the price of one.
  struct Findings {
    std::vector<Span> spans;
    bool health = false;
    bool finance = false;
  };
  Findings Analyze(absl::string_view text) const;

 private:
  // Analyze, on text whose full-width forms are already mapped to ASCII.
  Findings AnalyzeMapped(absl::string_view text) const;

  Options options_;
};

// Format checks, exposed for tests and tools. Inputs are the matched text.
bool IsValidCnResidentId(absl::string_view id);  // 18 chars, date, ISO 7064 MOD 11-2
bool PassesLuhn(absl::string_view digits_and_separators);
bool IsValidIban(absl::string_view iban);  // spaces allowed
bool IsValidUsSsn(absl::string_view ssn);  // NNN-NN-NNNN
bool IsValidIpAddress(absl::string_view ip);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_DETECTORS_H_
