#include "grpc_util/server_util.h"

#include <limits>

#include "gtest/gtest.h"

namespace hr::grpc_util {
namespace {

TEST(ChannelArgMillisTest, ClampsWhatAnIntCannotHold) {
  EXPECT_EQ(ChannelArgMillis(absl::Seconds(20)), 20000);
  EXPECT_EQ(ChannelArgMillis(absl::Microseconds(1500)), 1);
  EXPECT_EQ(ChannelArgMillis(absl::ZeroDuration()), 0);
  EXPECT_EQ(ChannelArgMillis(absl::Seconds(-3)), 0);
  constexpr int kMax = std::numeric_limits<int>::max();
  EXPECT_EQ(ChannelArgMillis(absl::Milliseconds(kMax)), kMax);
  // 1000 hours are 3.6e9 ms, which a cast to int wraps to a negative number.
  EXPECT_EQ(ChannelArgMillis(absl::Hours(1000)), kMax);
  EXPECT_EQ(ChannelArgMillis(absl::InfiniteDuration()), kMax);
}

}  // namespace
}  // namespace hr::grpc_util
