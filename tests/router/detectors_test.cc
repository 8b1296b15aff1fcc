#include "router/detectors.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace hr::router {
namespace {

// Makes a valid mainland-China resident ID from its first 17 digits.
std::string WithCheckDigit(const std::string& first17) {
  static const int kW[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kW[i];
  return first17 + "10X98765432"[sum % 11];
}

// The full-width forms of printable ASCII (U+FF01..U+FF5E; a space becomes the
// ideographic space U+3000), as a CJK input method in full-width mode types them.
std::string FullWidth(absl::string_view ascii) {
  std::string out;
  for (char c : ascii) {
    const char32_t cp = c == ' ' ? 0x3000 : (c > ' ' && c <= '~' ? 0xFF01 + (c - '!') : c);
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

std::vector<v1::SensitiveCategory> Categories(const std::vector<Span>& spans) {
  std::vector<v1::SensitiveCategory> out;
  for (const Span& s : spans) out.push_back(s.category);
  return out;
}

class DetectorsTest : public ::testing::Test {
 protected:
  // Returns the single span's text, or "" when there is not exactly one span.
  std::string Only(v1::SensitiveCategory c, const std::string& text) {
    auto spans = d_.FindSpans(text);
    if (spans.size() != 1 || spans[0].category != c) return "";
    return text.substr(spans[0].start, spans[0].end - spans[0].start);
  }
  Detectors d_;
};

TEST_F(DetectorsTest, CnResidentIdInChineseSentenceWithValidCheckDigit) {
  for (const std::string& first17 : {"11010519491231002", "44030819900307461", "31011519850512203"}) {
    std::string id = WithCheckDigit(first17);
    EXPECT_EQ(Only(v1::CN_RESIDENT_ID, "我的身份证号是" + id + "，请帮我查询。"), id);
  }
}

TEST_F(DetectorsTest, CnResidentIdWithWrongCheckDigitIsNotAnId) {
  std::string id = WithCheckDigit("11010519491231002");
  id.back() = id.back() == '1' ? '2' : '1';
  for (const Span& s : d_.FindSpans("身份证号" + id)) EXPECT_NE(s.category, v1::CN_RESIDENT_ID);
  EXPECT_FALSE(IsValidCnResidentId(id));
}

TEST_F(DetectorsTest, CnResidentIdWithImpossibleDateIsNotAnId) {
  EXPECT_FALSE(IsValidCnResidentId(WithCheckDigit("11010519491331002")));  // month 13
}

TEST_F(DetectorsTest, CnMobileNumbers) {
  EXPECT_EQ(Only(v1::PHONE, "请打我的手机13812345678谢谢"), "13812345678");
  EXPECT_EQ(Only(v1::PHONE, "电话：+86 138-1234-5678。"), "+86 138-1234-5678");
  // 12 digits is not a mobile number; 1[0-2] prefixes do not exist.
  EXPECT_TRUE(d_.FindSpans("编号 123812345678 结束").empty());
  EXPECT_TRUE(d_.FindSpans("号码12012345678").empty());
}

TEST_F(DetectorsTest, FullWidthDigitsAndLettersAreReadAsWhatTheyStandFor) {
  ASSERT_EQ(FullWidth("1X@ "), "\uFF11\uFF38\uFF20\u3000");
  // Valid IDs (the first ends in X), in Chinese sentences, typed in full width.
  for (const std::string& first17 : {"11010519491231002", "44030819900307461"}) {
    const std::string id = FullWidth(WithCheckDigit(first17));
    EXPECT_EQ(Only(v1::CN_RESIDENT_ID, "我的身份证号是" + id + "，请帮我查询。"), id);
    // A wrong check digit is no ID, however it is typed.
    std::string wrong = WithCheckDigit(first17);
    wrong.back() = wrong.back() == '1' ? '2' : '1';
    for (const Span& s : d_.FindSpans("身份证号" + FullWidth(wrong))) {
      EXPECT_NE(s.category, v1::CN_RESIDENT_ID);
    }
  }
  // Half and half: ASCII digits, a full-width check letter.
  const std::string mixed = "11010519491231002" + FullWidth("X");
  EXPECT_EQ(Only(v1::CN_RESIDENT_ID, "证件：" + mixed + "。"), mixed);
  EXPECT_EQ(Only(v1::PHONE, "请打我的手机" + FullWidth("13812345678") + "谢谢"),
            FullWidth("13812345678"));
  EXPECT_EQ(Only(v1::PHONE, "电话：" + FullWidth("+86 138-1234-5678") + "。"),
            FullWidth("+86 138-1234-5678"));
  EXPECT_EQ(Only(v1::PAYMENT_CARD, "卡号" + FullWidth("4111 1111 1111 1111") + "，"),
            FullWidth("4111 1111 1111 1111"));
  EXPECT_EQ(Only(v1::EMAIL, "邮箱" + FullWidth("wang@example.cn") + "，"),
            FullWidth("wang@example.cn"));
  // 12 full-width digits are no mobile number, as 12 ASCII digits are not.
  EXPECT_TRUE(d_.FindSpans("编号" + FullWidth("123812345678") + "结束").empty());
  // Spans after full-width text are offsets into the text as given.
  const std::string text =
      FullWidth("a1") + "，手机13812345678，卡" + FullWidth("4111111111111111");
  std::vector<Span> spans = d_.FindSpans(text);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(text.substr(spans[0].start, spans[0].end - spans[0].start), "13812345678");
  EXPECT_EQ(text.substr(spans[1].start, spans[1].end - spans[1].start),
            FullWidth("4111111111111111"));
}

TEST_F(DetectorsTest, InternationalAndNorthAmericanPhones) {
  EXPECT_EQ(Only(v1::PHONE, "Call +49 30 1234 5678 today"), "+49 30 1234 5678");
  EXPECT_EQ(Only(v1::PHONE, "Call (555) 123-4567 now"), "(555) 123-4567");
  EXPECT_EQ(Only(v1::PHONE, "or 555.123.4567."), "555.123.4567");
}

TEST_F(DetectorsTest, PaymentCardsPassLuhn) {
  EXPECT_EQ(Only(v1::PAYMENT_CARD, "card 4111 1111 1111 1111 exp"), "4111 1111 1111 1111");
  EXPECT_EQ(Only(v1::PAYMENT_CARD, "card 5500-0000-0000-0004."), "5500-0000-0000-0004");
  EXPECT_TRUE(PassesLuhn("378282246310005"));
  EXPECT_FALSE(PassesLuhn("4111 1111 1111 1112"));
  for (const Span& s : d_.FindSpans("card 4111 1111 1111 1112")) {
    EXPECT_NE(s.category, v1::PAYMENT_CARD);
  }
}

TEST_F(DetectorsTest, IbanPassesMod97) {
  EXPECT_EQ(Only(v1::IBAN, "IBAN DE89 3704 0044 0532 0130 00 please"),
            "DE89 3704 0044 0532 0130 00");
  EXPECT_EQ(Only(v1::IBAN, "to GB82WEST12345698765432."), "GB82WEST12345698765432");
  EXPECT_FALSE(IsValidIban("DE89 3704 0044 0532 0130 01"));
  EXPECT_TRUE(d_.FindSpans("to GB82WEST12345698765433").empty());
}

TEST_F(DetectorsTest, UsSsnInValidRanges) {
  EXPECT_EQ(Only(v1::US_SSN, "SSN 123-45-6789."), "123-45-6789");
  for (const char* bad : {"000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567",
                          "123-45-0000"}) {
    EXPECT_FALSE(IsValidUsSsn(bad)) << bad;
    EXPECT_TRUE(d_.FindSpans(std::string("SSN ") + bad).empty()) << bad;
  }
}

TEST_F(DetectorsTest, EmailAddresses) {
  EXPECT_EQ(Only(v1::EMAIL, "mail jane.doe+tag@example.co.uk, thanks"),
            "jane.doe+tag@example.co.uk");
  EXPECT_EQ(Only(v1::EMAIL, "邮箱是wang@example.cn谢谢"), "wang@example.cn");
  EXPECT_TRUE(d_.FindSpans("not an email: a@b").empty());
}

TEST_F(DetectorsTest, IpAddresses) {
  EXPECT_EQ(Only(v1::IP_ADDRESS, "host 192.168.1.20 is down"), "192.168.1.20");
  EXPECT_EQ(Only(v1::IP_ADDRESS, "v6 2001:db8::8a2e:370:7334 ok"), "2001:db8::8a2e:370:7334");
  EXPECT_TRUE(d_.FindSpans("version 999.1.1.1").empty());
  EXPECT_TRUE(d_.FindSpans("meet at 12:30").empty());
}

TEST_F(DetectorsTest, SeveralSpansComeSortedAndDoNotOverlap) {
  std::string text = "Mail a@example.com, card 4111111111111111, SSN 123-45-6789";
  auto spans = d_.FindSpans(text);
  EXPECT_EQ(Categories(spans),
            (std::vector<v1::SensitiveCategory>{v1::EMAIL, v1::PAYMENT_CARD, v1::US_SSN}));
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].end, spans[i].start);
}

TEST_F(DetectorsTest, TopicKeywordsInEnglishAndChinese) {
  EXPECT_TRUE(d_.MentionsHealth("My doctor said my blood pressure is high"));
  EXPECT_TRUE(d_.MentionsHealth("我有糖尿病，应该吃什么？"));
  EXPECT_FALSE(d_.MentionsHealth("What is the capital of France?"));
  EXPECT_TRUE(d_.MentionsFinance("How do I refinance my mortgage?"));
  EXPECT_TRUE(d_.MentionsFinance("我想申请信用卡"));
  EXPECT_FALSE(d_.MentionsFinance("Tell me a joke about cats"));
}

TEST_F(DetectorsTest, AnalyzeFindsTopicsAndSpansInOneCall) {
  Detectors::Findings f = d_.Analyze("My doctor billed my credit card 4111 1111 1111 1111.");
  EXPECT_TRUE(f.health);
  EXPECT_TRUE(f.finance);
  EXPECT_EQ(Categories(f.spans), (std::vector<v1::SensitiveCategory>{v1::PAYMENT_CARD}));
  Detectors::Findings none = d_.Analyze("Tell me a joke about cats, 3 of them");
  EXPECT_FALSE(none.health || none.finance);
  EXPECT_TRUE(none.spans.empty());
}

// The one-pass check only skips patterns that cannot match: with it and without it
// (every pattern run), texts mixing identifiers, near misses and prose give the
// same findings.
TEST_F(DetectorsTest, PrefilterChangesNothingButSpeed) {
  const std::vector<std::string> pieces = {"call me at ",
                                           "(555) 555-1234",
                                           "+44 20 7946 0958",
                                           "13812345678",
                                           "+86 138-1234-5678",
                                           "mail ",
                                           "jane.doe+tag@example.co.uk",
                                           "a@b",
                                           "wang@example.cn",
                                           " card ",
                                           "4111 1111 1111 1111",
                                           "4111 1111 1111 1112",
                                           "SSN 123-45-6789",
                                           "000-12-3456",
                                           "GB82 WEST 1234 5698 7654 32",
                                           "GB82WEST12345698765433",
                                           "192.168.1.20",
                                           "999.1.1.1",
                                           "2001:db8::8a2e:370:7334",
                                           "12:30",
                                           WithCheckDigit("11010519491231002"),
                                           "身份证号",
                                           "我有糖尿病",
                                           "信用卡",
                                           "doctor",
                                           "mortgage",
                                           " ",
                                           ", ",
                                           "。",
                                           "x",
                                           "ext. 12",
                                           "2024-05-06",
                                           "42",
                                           "hello world",
                                           "-",
                                           ".",
                                           FullWidth("13812345678"),
                                           FullWidth("4111 1111 1111 1111"),
                                           FullWidth("wang@example.cn"),
                                           FullWidth("192.168.1.20"),
                                           FullWidth(WithCheckDigit("11010519491231002")),
                                           FullWidth("7"),
                                           "，",
                                           "\xEF\xBC"};
  Detectors all_patterns(Detectors::Options{.prefilter = false});
  std::mt19937 rng(7);
  int spans = 0, health = 0, finance = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    for (int k = rng() % 12; k > 0; --k) text += pieces[rng() % pieces.size()];
    Detectors::Findings fast = d_.Analyze(text), slow = all_patterns.Analyze(text);
    ASSERT_EQ(fast.spans, slow.spans) << text;
    ASSERT_EQ(fast.health, slow.health) << text;
    ASSERT_EQ(fast.finance, slow.finance) << text;
    spans += fast.spans.size();
    health += fast.health;
    finance += fast.finance;
  }
  // The texts did exercise the detectors.
  EXPECT_GT(spans, 2000);
  EXPECT_GT(health, 200);
  EXPECT_GT(finance, 200);
}

}  // namespace
}  // namespace hr::router
