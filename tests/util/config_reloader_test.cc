// ConfigReloader over real files: what prompts a reload, and which files are
// watched after a valid and an invalid version.
#include "util/config_reloader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/eventually.h"

namespace hr::util {
namespace {

class ConfigReloaderTest : public ::testing::Test {
 protected:
  ConfigReloaderTest() {
    std::string tmpl = ::testing::TempDir() + "/reloader-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(Path(name)) << text;
  }
  // Replaced the way config tools do it: written aside, renamed over the old one.
  void Replace(const std::string& name, const std::string& text) {
    Write(name + ".next", text);
    ASSERT_EQ(std::rename(Path(name + ".next").c_str(), Path(name).c_str()), 0);
  }

  // A load that answers with `next_files` (nullopt: invalid) and records why it ran.
  ConfigReloader::Load Recording() {
    return [this](absl::string_view why) {
      absl::MutexLock lock(&mu_);
      reasons_.emplace_back(why);
      return next_files_;
    };
  }
  std::vector<std::string> Reasons() {
    absl::MutexLock lock(&mu_);
    return reasons_;
  }
  void SetNextFiles(std::optional<std::set<std::string>> files) {
    absl::MutexLock lock(&mu_);
    next_files_ = std::move(files);
  }

  std::string dir_;
  absl::Mutex mu_;
  std::vector<std::string> reasons_ ABSL_GUARDED_BY(mu_);
  std::optional<std::set<std::string>> next_files_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ConfigReloaderTest, ReloadsWhenAWatchedFileChangesAndFollowsTheNewFiles) {
  Write("a", "1");
  Write("b", "1");
  ConfigReloader reloader({Path("a")}, Recording());
  reloader.ReloadIfChanged();
  EXPECT_TRUE(Reasons().empty());

  // The new version is read from a and b: both are watched from now on.
  SetNextFiles(std::set<std::string>{Path("a"), Path("b")});
  Replace("a", "2");
  reloader.ReloadIfChanged();
  ASSERT_EQ(Reasons().size(), 1u);
  EXPECT_EQ(Reasons()[0], Path("a") + " changed");
  reloader.ReloadIfChanged();  // nothing changed since
  EXPECT_EQ(Reasons().size(), 1u);
  Write("b", "22");  // an edit in place
  reloader.ReloadIfChanged();
  ASSERT_EQ(Reasons().size(), 2u);
  EXPECT_EQ(Reasons()[1], Path("b") + " changed");

  // A version read from a only: b is no longer watched.
  SetNextFiles(std::set<std::string>{Path("a")});
  reloader.Reload("SIGHUP");
  EXPECT_EQ(Reasons().back(), "SIGHUP");
  Write("b", "333");
  reloader.ReloadIfChanged();
  EXPECT_EQ(Reasons().size(), 3u);
}

// How Kubernetes updates a ConfigMap volume: each version in a directory of its
// own, `..data` a symlink to the current one, the file a symlink through it;
// an update swaps `..data` at once.
TEST_F(ConfigReloaderTest, ReloadsWhenAConfigMapVolumeSwapsItsVersion) {
  ASSERT_EQ(mkdir(Path("..v1").c_str(), 0755), 0);
  Write("..v1/policy.textproto", "version: 1");
  ASSERT_EQ(symlink("..v1", Path("..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/policy.textproto", Path("policy.textproto").c_str()), 0);
  SetNextFiles(std::set<std::string>{Path("policy.textproto")});
  ConfigReloader reloader({Path("policy.textproto")}, Recording());

  ASSERT_EQ(mkdir(Path("..v2").c_str(), 0755), 0);
  Write("..v2/policy.textproto", "version: 2");  // the same size: only the inode differs
  ASSERT_EQ(symlink("..v2", Path("..data_tmp").c_str()), 0);
  ASSERT_EQ(std::rename(Path("..data_tmp").c_str(), Path("..data").c_str()), 0);
  reloader.ReloadIfChanged();
  ASSERT_EQ(Reasons().size(), 1u);
  EXPECT_EQ(Reasons()[0], Path("policy.textproto") + " changed");
  reloader.ReloadIfChanged();
  EXPECT_EQ(Reasons().size(), 1u);
}

TEST_F(ConfigReloaderTest, AnInvalidVersionKeepsTheFilesWatchedAndIsNotRetriedUntilTheyChange) {
  Write("a", "1");
  Write("b", "1");
  ConfigReloader reloader({Path("a"), Path("b")}, Recording());
  SetNextFiles(std::nullopt);
  Write("a", "broken");
  reloader.ReloadIfChanged();
  EXPECT_EQ(Reasons().size(), 1u);
  reloader.ReloadIfChanged();  // the same broken file is not read again
  EXPECT_EQ(Reasons().size(), 1u);
  SetNextFiles(std::set<std::string>{Path("a"), Path("b")});
  Write("b", "fixed");  // b is still watched
  reloader.ReloadIfChanged();
  EXPECT_EQ(Reasons().size(), 2u);
}

TEST_F(ConfigReloaderTest, WatchLooksByItselfUntilStopped) {
  Write("a", "1");
  SetNextFiles(std::set<std::string>{Path("a")});
  ConfigReloader reloader({Path("a")}, Recording());
  reloader.Watch(absl::Milliseconds(10));
  Replace("a", "2");
  ASSERT_TRUE(hr::testing::Eventually([&] { return !Reasons().empty(); }, absl::Seconds(5),
                                      absl::Milliseconds(10)));
  ASSERT_EQ(Reasons().size(), 1u);
  reloader.StopWatching();
  Replace("a", "3");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Reasons().size(), 1u);
}

}  // namespace
}  // namespace hr::util
