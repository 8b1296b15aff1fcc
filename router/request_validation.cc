#include "router/request_validation.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "util/log_format.h"
#include "util/proto_enum.h"
#include "util/utf8.h"

namespace hr::router {

namespace v1 = ::hybridrouter::v1;

absl::Status ValidateChatMessages(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages) {
  if (messages.empty()) {
    return absl::InvalidArgumentError("messages: at least one message is required");
  }
  bool has_user = false;
  bool user_text = false;
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role: '",
                                                     util::ForLog(m.role(), 32),
                                                     "' is not one of system, user, assistant"));
    }
    size_t bad = util::FindInvalidUtf8(m.content());
    if (bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].content: not valid UTF-8 at byte ", bad));
    }
    // Models take text as C strings: what follows a NUL would silently be lost.
    if (size_t nul = m.content().find('\0'); nul != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].content: a NUL character at byte ", nul));
    }
    if (m.role() == "user") {
      has_user = true;
      user_text |= !absl::StripAsciiWhitespace(m.content()).empty();
    }
  }
  if (!has_user) {
    return absl::InvalidArgumentError("messages: no message has role 'user'");
  }
  if (!user_text) {
    return absl::InvalidArgumentError("messages: the user's messages hold no text");
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerationOptions(const v1::GenerationOptions& o,
                                       const RequestLimits& limits) {
  if (o.max_tokens() < 0 || o.max_tokens() > limits.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("options.max_tokens: ", o.max_tokens(),
                                                   " is outside [0, ", limits.max_tokens, "]"));
  }
  if (!(o.temperature() >= 0 && o.temperature() <= 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.temperature: ", o.temperature(), " is outside [0, 2]"));
  }
  if (o.stop_size() > limits.max_stop_strings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.stop: ", o.stop_size(), " strings; the limit is ", limits.max_stop_strings));
  }
  for (int i = 0; i < o.stop_size(); ++i) {
    if (o.stop(i).empty() || o.stop(i).size() > limits.max_stop_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.stop[", i, "]: must be 1 to ", limits.max_stop_bytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<policy::Locale> ValidateGenerateRequest(const v1::GenerateRequest& r,
                                                       const RequestLimits& limits) {
  if (r.request_id().size() > limits.max_request_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id: ", r.request_id().size(),
                                                   " bytes; the limit is ",
                                                   limits.max_request_id_bytes));
  }
  absl::StatusOr<policy::Locale> locale = policy::ParseLocale(r.locale());
  if (!locale.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("locale: ", locale.status().message()));
  }
  if (r.messages_size() > limits.max_messages) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messages: ", r.messages_size(), " messages; the limit is ", limits.max_messages));
  }
  if (absl::Status messages = ValidateChatMessages(r.messages()); !messages.ok()) {
    return messages;
  }
  size_t total = 0;
  for (const v1::ChatMessage& m : r.messages()) total += m.content().size();
  if (total > limits.max_prompt_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messages: the prompt is ", total, " bytes; the limit is ", limits.max_prompt_bytes));
  }
  if (absl::Status options = ValidateGenerationOptions(r.options(), limits); !options.ok()) {
    return options;
  }
  if (std::string why =
          util::NotAnEnumValue(v1::RouteHint_descriptor(), r.hint(), /*list_zero=*/true);
      !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("hint: ", why));
  }
  return locale;
}

}  // namespace hr::router
