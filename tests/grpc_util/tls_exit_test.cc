// KeepTlsAliveUntilExit: OpenSSL still works while the process exits, as gRPC's
// threads (a TLS handshake in progress) may need it then.
#include <cstdlib>

#include "grpc_util/server_util.h"
#include "gtest/gtest.h"
#include "openssl/rand.h"

namespace hr::grpc_util {
namespace {

// Runs at exit after every handler registered later, OpenSSL's cleanup
// included when it registers one: exits 0 only if OpenSSL still serves.
void UseTlsWhileExiting() {
  unsigned char bytes[16];
  std::_Exit(RAND_bytes(bytes, sizeof(bytes)) == 1 ? 0 : 3);
}

TEST(KeepTlsAliveUntilExitTest, OpenSslStillServesWhileTheProcessExits) {
  // A fresh process, so that nothing has initialised OpenSSL before.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::atexit(UseTlsWhileExiting);
        KeepTlsAliveUntilExit();
        unsigned char bytes[16];
        if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::_Exit(4);
        std::exit(1);  // UseTlsWhileExiting turns it into 0
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace hr::grpc_util
