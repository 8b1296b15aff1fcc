#include "router/redaction.h"

#include <string>

#include "gtest/gtest.h"
#include "router/detectors.h"

namespace hr::router {
namespace {

using Mapping = std::vector<std::pair<std::string, std::string>>;

std::array<bool, policy::kNumCategories> Only(v1::SensitiveCategory c) {
  std::array<bool, policy::kNumCategories> r{};
  r[c] = true;
  return r;
}

// A conversation of two messages redacted for `category`, with the spans the
// detectors find.
Redacted RedactBoth(const std::string& a, const std::string& b, v1::SensitiveCategory category) {
  Detectors d;
  return Redact({a, b}, {d.FindSpans(a), d.FindSpans(b)}, Only(category));
}

TEST(RedactTest, ReplacesMarkedCategoriesWithTypedPlaceholders) {
  Redacted r = RedactBoth("ID 11010519491231002X and mail x@example.com",
                          "again 11010519491231002X", v1::CN_RESIDENT_ID);
  EXPECT_EQ(r.contents[0], "ID [CN_RESIDENT_ID_1] and mail x@example.com");
  EXPECT_EQ(r.contents[1], "again [CN_RESIDENT_ID_1]");  // same value, same placeholder
  EXPECT_EQ(r.counts[v1::CN_RESIDENT_ID], 1);
  ASSERT_EQ(r.mapping.size(), 1u);
  EXPECT_EQ(r.mapping[0].second, "11010519491231002X");
}

TEST(RedactTest, AnIdTypedInFullWidthIsReplacedAndRestoredAsTyped) {
  // 11010519491231002X in full-width digits and letter.
  const std::string id =
      "\uFF11\uFF11\uFF10\uFF11\uFF10\uFF15\uFF11\uFF19\uFF14\uFF19\uFF11\uFF12\uFF13"
      "\uFF11\uFF10\uFF10\uFF12\uFF38";
  Redacted r = RedactBoth("我的身份证号是" + id + "，谢谢", "没有", v1::CN_RESIDENT_ID);
  EXPECT_EQ(r.contents[0], "我的身份证号是[CN_RESIDENT_ID_1]，谢谢");
  ASSERT_EQ(r.mapping.size(), 1u);
  EXPECT_EQ(r.mapping[0].second, id);
  Restorer restorer(r.mapping);
  EXPECT_EQ(restorer.Feed("号码是[CN_RESIDENT_ID_1]。") + restorer.Flush(), "号码是" + id + "。");
}

TEST(RedactTest, SkipsPlaceholdersTheConversationAlreadyHolds) {
  // The user typed [EMAIL_1] and [EMAIL_2] themselves: the addresses get other
  // numbers, so restoring the answer leaves the typed ones as they were.
  const std::string a = "Is [EMAIL_1] a template? Mail x@example.com";
  const std::string b = "or y@example.com, not [EMAIL_2]";
  Redacted r = RedactBoth(a, b, v1::EMAIL);
  EXPECT_EQ(r.contents[0], "Is [EMAIL_1] a template? Mail [EMAIL_3]");
  EXPECT_EQ(r.contents[1], "or [EMAIL_4], not [EMAIL_2]");
  EXPECT_EQ(r.counts[v1::EMAIL], 2);  // distinct values, whatever their numbers
  Restorer restorer(r.mapping);
  std::string answer = restorer.Feed(r.contents[0] + " / " + r.contents[1]);
  answer += restorer.Flush();
  EXPECT_EQ(answer, a + " / " + b);
}

TEST(RestorerTest, RestoresPlaceholdersSplitAcrossChunks) {
  Restorer r(Mapping{{"[EMAIL_1]", "a@b.cn"}, {"[EMAIL_2]", "c@d.cn"}});
  std::string out;
  for (const char* piece : {"Write to [EM", "AIL_", "1] or [", "EMAIL_2", "] now [x] ["}) {
    out += r.Feed(piece);
  }
  out += r.Flush();
  EXPECT_EQ(out, "Write to a@b.cn or c@d.cn now [x] [");
}

TEST(RestorerTest, PassesTextThroughWithoutMapping) {
  Restorer r(Mapping{});
  EXPECT_EQ(r.Feed("[EMAIL_1] stays"), "[EMAIL_1] stays");
}

TEST(RestorerTest, HoldsBackOnlyWhatCouldBeAPlaceholder) {
  Restorer r(Mapping{{"[IBAN_1]", "DE89"}});
  EXPECT_EQ(r.Feed("abc [I"), "abc ");
  EXPECT_EQ(r.Feed("X"), "[IX");
}

}  // namespace
}  // namespace hr::router
