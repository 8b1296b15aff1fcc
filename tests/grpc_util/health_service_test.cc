// The completion-queue health service on a real server on loopback.
#include "grpc_util/health_service.h"

#include <memory>
#include <thread>

#include "grpc_util/cq_pool.h"
#include "grpc_util/server_util.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "gtest/gtest.h"
#include "tests/eventually.h"

namespace hr::grpc_util {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = StartServer("127.0.0.1:0", {}, "", [this](grpc::ServerBuilder& builder) {
      queues_ = std::make_unique<CqPool>(builder, 2);
      builder.RegisterService(&health_);
      builder.SetOption(
          std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(health_.Controller()));
    });
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(started->server);
    queues_->Start();
    health_.Serve(queues_.get());
    stub_ = Health::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", started->port),
                                                grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    health_.Shutdown();
    // Open watches ended with the health service, so this does not wait.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
    queues_->Shutdown();
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, response);
  }

  // Waits until no watch is open (a hung-up one goes when gRPC says it is done).
  int WatchesLeft() {
    hr::testing::Eventually([this] { return health_.WatchCount() == 0; }, absl::Seconds(10),
                            absl::Milliseconds(10));
    return health_.WatchCount();
  }

  QueueHealthService health_;
  std::unique_ptr<CqPool> queues_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckAnswersForTheServerAndRefusesUnknownServices) {
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  grpc::Status unknown = Check("no.such.Service", &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("no.such.Service"), std::string::npos);
}

TEST_F(HealthServiceTest, GrpcServersHealthInterfaceControlsThisService) {
  ASSERT_NE(server_->GetHealthCheckService(), nullptr);
  server_->GetHealthCheckService()->SetServingStatus(false);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  server_->GetHealthCheckService()->SetServingStatus(true);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
}

TEST_F(HealthServiceTest, WatchHearsEachChangeAndEndsOnShutdown) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  health_.SetServing(false);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(false);  // no change, nothing written
  health_.SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  health_.Shutdown();
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());

  // After the shutdown, Check says NOT_SERVING and SetServing changes nothing.
  health_.SetServing(true);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysSoAndStaysOpen) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("no.such.Service");
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  health_.SetServing(false);  // not this watch's service: nothing written
  EXPECT_EQ(health_.WatchCount(), 1);
  context.TryCancel();
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(WatchesLeft(), 0);
}

TEST_F(HealthServiceTest, ManyWatchersComeAndGo) {
  // Watches that hang up while the status changes: none may be kept.
  for (int round = 0; round < 20; ++round) {
    grpc::ClientContext context;
    auto reader = stub_->Watch(&context, HealthCheckRequest());
    HealthCheckResponse response;
    ASSERT_TRUE(reader->Read(&response));
    health_.SetServing(round % 2 == 1);
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    reader->Finish();
  }
  EXPECT_EQ(WatchesLeft(), 0);
}

// DrainServer ends the server once the calls on its queues are done: a watch
// that runs past the deadline is cancelled and counted as not drained; one that
// the health service ends lets it return at once with everything drained.
TEST_F(HealthServiceTest, DrainServerCancelsWhatOutlastsItsDeadline) {
  grpc::ClientContext context;
  auto watch = stub_->Watch(&context, HealthCheckRequest());
  HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_FALSE(
      DrainServer(server_.get(), queues_->live_calls(), absl::Now() + absl::Milliseconds(300)));
  while (watch->Read(&response)) {
  }
  // Cut off with the connection, as gRPC's own Shutdown does at its deadline.
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(HealthServiceTest, DrainServerReturnsWhenTheLastCallEnds) {
  grpc::ClientContext context;
  auto watch = stub_->Watch(&context, HealthCheckRequest());
  HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  bool drained = false;
  std::thread drain([this, &drained] {
    drained = DrainServer(server_.get(), queues_->live_calls(), absl::Now() + absl::Minutes(5));
  });
  health_.Shutdown();  // ends the watch
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&response));
  EXPECT_TRUE(watch->Finish().ok());
  drain.join();
  EXPECT_TRUE(drained);
}

}  // namespace
}  // namespace hr::grpc_util
