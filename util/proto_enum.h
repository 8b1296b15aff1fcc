#ifndef HYBRID_ROUTER_UTIL_PROTO_ENUM_H_
#define HYBRID_ROUTER_UTIL_PROTO_ENUM_H_

#include <string>

#include "google/protobuf/descriptor.h"

namespace hr::util {

// proto3 keeps an enum number that names no value, whether it came in binary,
// text or JSON. Returns why `value` is not one of `e`'s values, naming them
// ("7 is not a RouteHint (one of ROUTE_HINT_UNSPECIFIED, PREFER_LOCAL,
// PREFER_CLOUD)"), or "" when it is one. `list_zero`: whether the zero value is
// among those named, for a field that may be left unset.
std::string NotAnEnumValue(const google::protobuf::EnumDescriptor* e, int value, bool list_zero);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_PROTO_ENUM_H_
