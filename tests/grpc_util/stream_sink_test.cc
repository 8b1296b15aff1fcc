#include "grpc_util/stream_sink.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hr::grpc_util {
namespace {

// Records what the sink asks of the transport; the test plays gRPC and reports
// each write's completion with WriteDone.
class RecordingWriter : public StreamWriter<std::string> {
 public:
  void Write(const std::string* message) override { ops.push_back("write " + *message); }
  void WriteLast(const std::string* message, const grpc::Status& status) override {
    ops.push_back(absl::StrCat("last ", *message, " ", status.error_code()));
  }
  void Close(const grpc::Status& status) override {
    ops.push_back(absl::StrCat("close ", status.error_code(), " ", status.error_message()));
  }

  std::vector<std::string> ops;
};

bool Concatenate(std::string& queued, std::string& next) {
  queued += next;
  return true;
}

struct SinkTest : ::testing::Test {
  std::shared_ptr<StreamSink<std::string>> Make(MergeFn<std::string> merge) {
    auto sink = std::make_shared<StreamSink<std::string>>(merge);
    sink->Attach(&writer);
    return sink;
  }
  RecordingWriter writer;
};

using Ops = std::vector<std::string>;

TEST_F(SinkTest, WritesAtOnceAndMergesWhatQueuesBehindTheWriteInFlight) {
  auto sink = Make(&Concatenate);
  EXPECT_TRUE(sink->Send("a"));
  EXPECT_EQ(writer.ops, Ops({"write a"}));
  EXPECT_TRUE(sink->Send("b"));
  EXPECT_TRUE(sink->Send("c"));
  EXPECT_EQ(writer.ops, Ops({"write a"}));  // one write in flight at a time
  sink->WriteDone(true);
  EXPECT_EQ(writer.ops, Ops({"write a", "write bc"}));
  sink->WriteDone(true);
  EXPECT_EQ(writer.ops.size(), 2u);  // nothing left to write
}

TEST_F(SinkTest, WithoutAMergeEveryMessageIsWrittenInOrder) {
  auto sink = Make(nullptr);
  sink->Send("a");
  sink->Send("b");
  sink->Send("c");
  sink->WriteDone(true);
  sink->WriteDone(true);
  EXPECT_EQ(writer.ops, Ops({"write a", "write b", "write c"}));
}

TEST_F(SinkTest, TheLastMessageCarriesTheStatus) {
  auto sink = Make(&Concatenate);
  sink->Send("a");
  EXPECT_TRUE(sink->SendLast("z", grpc::Status(grpc::StatusCode::NOT_FOUND, "gone")));
  EXPECT_EQ(writer.ops, Ops({"write a"}));
  sink->WriteDone(true);
  EXPECT_EQ(writer.ops, Ops({"write a", absl::StrCat("last z ", grpc::StatusCode::NOT_FOUND)}));
  // The call is finishing: nothing more is taken.
  EXPECT_FALSE(sink->Send("late"));
  EXPECT_TRUE(sink->closed());
}

TEST_F(SinkTest, AnIdleStreamWritesItsLastMessageWithTheStatusInOneOperation) {
  auto sink = Make(&Concatenate);
  EXPECT_TRUE(sink->SendLast("all", grpc::Status::OK));
  EXPECT_EQ(writer.ops, Ops({"last all 0"}));
}

TEST_F(SinkTest, FinishWaitsForTheQueuedMessagesAndTheFirstOneWins) {
  auto sink = Make(nullptr);
  sink->Send("a");
  sink->Send("b");
  sink->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "first"));
  sink->Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "second"));
  EXPECT_EQ(writer.ops, Ops({"write a"}));
  sink->WriteDone(true);  // b is the last one queued: it leaves with the status
  EXPECT_EQ(writer.ops, Ops({"write a", absl::StrCat("last b ", grpc::StatusCode::INTERNAL)}));

  RecordingWriter idle_writer;
  auto idle = std::make_shared<StreamSink<std::string>>();
  idle->Attach(&idle_writer);
  idle->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(idle_writer.ops, Ops({absl::StrCat("close ", grpc::StatusCode::UNAVAILABLE, " down")}));
  EXPECT_FALSE(idle->Send("late"));
}

TEST_F(SinkTest, AFailedWriteStopsTheProducerAndEndsTheCall) {
  auto sink = Make(nullptr);
  sink->Send("a");
  sink->Send("b");
  sink->WriteDone(false);  // the client went away
  EXPECT_TRUE(sink->closed());
  EXPECT_FALSE(sink->Send("c"));
  EXPECT_EQ(writer.ops, Ops({"write a", absl::StrCat("close ", grpc::StatusCode::CANCELLED,
                                                      " client went away")}));
}

TEST_F(SinkTest, CancellationRunsTheProducersFunctionOnceAndEndsTheCall) {
  auto sink = Make(nullptr);
  int before = 0;
  sink->OnCancel([&] { ++before; });
  sink->Cancelled();
  EXPECT_EQ(before, 1);
  EXPECT_EQ(writer.ops,
            Ops({absl::StrCat("close ", grpc::StatusCode::CANCELLED, " cancelled by the client")}));
  // A producer that asks after the cancellation hears of it at once.
  int after = 0;
  sink->OnCancel([&] { ++after; });
  EXPECT_EQ(after, 1);
  EXPECT_EQ(before, 1);
  EXPECT_FALSE(sink->Send("x"));
}

TEST_F(SinkTest, NothingIsWrittenOnceTheWriterIsGone) {
  auto sink = Make(nullptr);
  sink->Detach();
  EXPECT_FALSE(sink->Send("a"));
  sink->Finish(grpc::Status::OK);
  EXPECT_TRUE(writer.ops.empty());
}

}  // namespace
}  // namespace hr::grpc_util
