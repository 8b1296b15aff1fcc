#include "grpc_util/write_batches.h"

#include <string>

#include "gtest/gtest.h"

namespace hr::grpc_util {
namespace {

TEST(WriteBatchesTest, WhatComesDuringAWriteLeavesInTheNextOne) {
  WriteBatches<std::string> out(100);
  out.Gather(1) += "a";
  const std::string* first = out.Next();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(*first, "a");
  EXPECT_TRUE(out.in_flight());
  // The message in flight never changes; later ones gather behind it.
  out.Gather(1) += "b";
  out.Gather(1) += "c";
  EXPECT_EQ(*first, "a");
  EXPECT_EQ(out.Next(), nullptr);  // one write at a time
  out.WriteDone();
  EXPECT_FALSE(out.in_flight());
  const std::string* second = out.Next();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(*second, "bc");
  out.WriteDone();
  EXPECT_EQ(out.Next(), nullptr);  // nothing waits
}

TEST(WriteBatchesTest, AFullMessageStartsANewOne) {
  WriteBatches<std::string> out(10);
  out.Gather(6) += "x";
  out.Gather(6) += "y";  // the first reached 10 bytes with this one
  out.Gather(6) += "z";
  EXPECT_EQ(*out.Next(), "xy");
  out.WriteDone();
  EXPECT_EQ(*out.Next(), "z");
}

TEST(WriteBatchesTest, ClearDropsWhatWaits) {
  WriteBatches<std::string> out(100);
  out.Gather(1) += "a";
  ASSERT_NE(out.Next(), nullptr);
  out.Gather(1) += "b";
  out.WriteDone();
  out.Clear();
  EXPECT_EQ(out.Next(), nullptr);
}

}  // namespace
}  // namespace hr::grpc_util
