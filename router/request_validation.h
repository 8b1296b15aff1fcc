#ifndef HYBRID_ROUTER_ROUTER_REQUEST_VALIDATION_H_
#define HYBRID_ROUTER_ROUTER_REQUEST_VALIDATION_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hybridrouter/v1/router.pb.h"
#include "policy/locale.h"

namespace hr::router {

struct RequestLimits {
  size_t max_prompt_bytes = 32 * 1024;  // all message contents together
  int max_messages = 64;
  int max_tokens = 4096;
  int max_stop_strings = 8;
  size_t max_stop_bytes = 64;
  size_t max_request_id_bytes = 128;
};

// Checks the messages of a conversation, as the device router and the cloud
// backends both take them: at least one, each with a known role and UTF-8
// content, and a user message that holds some text. Failures are InvalidArgument
// naming the field.
absl::Status ValidateChatMessages(
    const google::protobuf::RepeatedPtrField<::hybridrouter::v1::ChatMessage>& messages);

// Checks generation options against `limits` (max_tokens, the stop strings) and
// the temperature range, for the device router and the cloud backends alike.
absl::Status ValidateGenerationOptions(const ::hybridrouter::v1::GenerationOptions& options,
                                       const RequestLimits& limits);

// Checks a request and returns its parsed locale. Every failure is
// InvalidArgument with a message that names the field and what is wrong with it
// ("messages[1].content: not valid UTF-8 at byte 17").
absl::StatusOr<policy::Locale> ValidateGenerateRequest(
    const ::hybridrouter::v1::GenerateRequest& request, const RequestLimits& limits);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_REQUEST_VALIDATION_H_
