// GrpcCloudClient, hr-device's client of the cloud backends, against a real
// hr-cloud on loopback, for what the whole topology cannot time: a reload that
// drops a backend between a call's start and its stream.
#include "device_stub/cloud_client.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc_util/cq_pool.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

// A completion queue and the thread that drives it, as one of hr-device's
// CqPool threads does.
class QueueThread {
 public:
  QueueThread()
      : thread_([this] {
          void* tag;
          bool ok;
          while (queue_.Next(&tag, &ok)) static_cast<grpc_util::CqTag*>(tag)->Proceed(ok);
        }) {}
  ~QueueThread() {
    queue_.Shutdown();
    thread_.join();
  }
  grpc::CompletionQueue* queue() { return &queue_; }

 private:
  grpc::CompletionQueue queue_;
  std::thread thread_;
};

// How one call ended.
struct Outcome {
  absl::Notification done;
  absl::Status status;
  std::string text;
};

device::CloudCallbacks RecordInto(Outcome& out) {
  device::CloudCallbacks callbacks;
  callbacks.on_start = [](const v1::CloudStart&) {};
  callbacks.on_text = [&out](std::string text) { out.text += text; };
  callbacks.on_done = [&out](absl::StatusOr<v1::CloudDone> done, std::string last_text) {
    out.status = done.status();
    out.text += last_text;
    out.done.Notify();
  };
  return callbacks;
}

TEST(CloudClientTest, ACallWhoseBackendAReloadDropsBeforeItsStreamEndsUnavailable) {
  CloudProcess cloud("eu-central-1", {"--synthetic_echo"});
  v1::Backend backend;
  backend.set_name("eu-central-1-a");
  backend.set_region("eu-central-1");
  backend.set_address(cloud.address());
  backend.set_shared_stream(true);
  v1::CloudRequest request = CloudRequestTo("", {"eu-central-1"}, "one two three", 16);
  request.set_request_id("r1");

  QueueThread queue;
  // The reload lands while the next call starts: after the call took its
  // connection, before it asks that connection for its stream.
  bool reload_at_next_pick = false;
  device::GrpcCloudClient* client_ptr = nullptr;
  device::GrpcCloudClient client([&] {
    if (reload_at_next_pick) {
      reload_at_next_pick = false;
      client_ptr->KeepOnly(v1::Backends());  // the backend left the file
    }
    return queue.queue();
  });
  client_ptr = &client;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);

  // Served as usual before the reload: the setting works.
  Outcome before;
  client.Start(backend, request, deadline, RecordInto(before));
  ASSERT_TRUE(before.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  ASSERT_TRUE(before.status.ok()) << before.status;
  EXPECT_EQ(before.text, "one two three");

  reload_at_next_pick = true;
  Outcome dropped;
  client.Start(backend, request, deadline, RecordInto(dropped));
  ASSERT_TRUE(dropped.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_FALSE(reload_at_next_pick);
  // Not served on a stream opened for a connection nobody holds any more, which
  // nothing would ever close: it fails as calls on a stream that ended do, and
  // the router tries the backends the reloaded file still has.
  EXPECT_EQ(dropped.status.code(), absl::StatusCode::kUnavailable) << dropped.status;
  EXPECT_TRUE(dropped.text.empty());

  EXPECT_TRUE(client.WaitForCalls(absl::Seconds(10)));
  EXPECT_TRUE(client.CloseStreams(absl::Seconds(5))) << "a stream was left open";
}

}  // namespace
}  // namespace hr::testing
