#include "policy/locale.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace hr::policy {
namespace {

TEST(ParseLocaleTest, ExtractsLanguageScriptAndRegion) {
  auto l = ParseLocale("zh-Hans-CN");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->language, "zh");
  EXPECT_EQ(l->script, "Hans");
  EXPECT_EQ(l->region, "CN");
  EXPECT_EQ(l->country(), "CN");
}

TEST(ParseLocaleTest, NormalisesCaseAndAcceptsUnderscore) {
  auto l = ParseLocale("DE_de");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->language, "de");
  EXPECT_EQ(l->country(), "DE");
}

TEST(ParseLocaleTest, NoRegionMeansNoCountry) {
  auto l = ParseLocale("en");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->country(), "");
}

TEST(ParseLocaleTest, NumericRegionIsNotACountry) {
  auto l = ParseLocale("es-419");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->region, "419");
  EXPECT_EQ(l->country(), "");
}

TEST(ParseLocaleTest, AcceptsVariantsExtensionsAndPrivateUse) {
  auto l = ParseLocale("de-CH-1996-u-co-phonebk-x-private");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->country(), "CH");
}

TEST(ParseLocaleTest, RejectsMalformedTags) {
  for (const char* bad : {"", "e", "en--US", "en-US-", "en US", "1234", "en-US-US",
                          "en-toolongsubtag", "zh-CN-u", "é-FR"}) {
    auto l = ParseLocale(bad);
    EXPECT_FALSE(l.ok()) << "accepted '" << bad << "'";
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseLocaleTest, ErrorNamesTheSubtag) {
  auto l = ParseLocale("en-US-US");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("'US'"), absl::string_view::npos) << l.status();
}

TEST(ParseLocaleTest, ErrorShowsTheTagEscaped) {
  // What an app sent comes back in the error (and hr-device's log line for it):
  // it must not break a line there.
  auto l = ParseLocale("en\nfake log line");
  ASSERT_FALSE(l.ok());
  EXPECT_TRUE(absl::StrContains(l.status().message(), "'en\\nfake log line'")) << l.status();
  EXPECT_FALSE(absl::StrContains(l.status().message(), "\n")) << l.status();
}

}  // namespace
}  // namespace hr::policy
