// util::ReadFile: what each way of failing to read a file reports.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "util/text_proto.h"

namespace hr::util {
namespace {

std::string TestDir() {
  std::string tmpl = ::testing::TempDir() + "/hr-read-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

TEST(ReadFileTest, ReadsAWholeFile) {
  const std::string path = TestDir() + "/f";
  const std::string text(100 * 1024, 'x');  // more than one read's buffer
  std::ofstream(path) << text << "end";
  absl::StatusOr<std::string> read = ReadFile(path, kConfigFile);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text + "end");
}

TEST(ReadFileTest, EachFailureHasItsCodeAndNamesThePath) {
  const std::string dir = TestDir();
  std::ofstream(dir + "/big") << std::string(2000, 'x');
  ASSERT_EQ(mkfifo((dir + "/fifo").c_str(), 0600), 0);
  const struct {
    std::string path;
    ReadOptions options;
    absl::StatusCode code;
    std::string says;
  } cases[] = {
      {dir + "/none", kConfigFile, absl::StatusCode::kNotFound, "No such file"},
      {dir + "/big/below", kConfigFile, absl::StatusCode::kNotFound, "Not a directory"},
      {dir, kConfigFile, absl::StatusCode::kInvalidArgument, "Is a directory"},
      {dir, ReadOptions{}, absl::StatusCode::kInvalidArgument, "Is a directory"},
      // Refused without waiting for a writer.
      {dir + "/fifo", kConfigFile, absl::StatusCode::kInvalidArgument, "not a regular file"},
      {dir + "/big", ReadOptions{false, 1000}, absl::StatusCode::kInvalidArgument,
       "larger than the limit of 1000 bytes"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::string> read = ReadFile(c.path, c.options);
    EXPECT_EQ(read.status().code(), c.code) << c.path << ": " << read.status();
    EXPECT_TRUE(absl::StrContains(read.status().message(), "cannot read " + c.path + ": "))
        << read.status();
    EXPECT_TRUE(absl::StrContains(read.status().message(), c.says)) << read.status();
  }
}

// A file its reader may not open is PermissionDenied (so that a service can say
// whose permission is missing), not NotFound. Root reads anything: as root, the
// read runs in a child process that has become `nobody` first.
TEST(ReadFileTest, AFileThatMayNotBeOpenedIsPermissionDenied) {
  const std::string path = TestDir() + "/secret";
  std::ofstream(path) << "key";
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(chmod(path.substr(0, path.rfind('/')).c_str(), 0755), 0);
  auto code_of_read = [&path] {
    return static_cast<int>(ReadFile(path, kConfigFile).status().code());
  };
  if (geteuid() != 0) {
    EXPECT_EQ(code_of_read(), static_cast<int>(absl::StatusCode::kPermissionDenied));
    return;
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    constexpr uid_t kNobody = 65534;
    if (setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(100);
    _exit(code_of_read());
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), static_cast<int>(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace hr::util
