#include "util/config_positions.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hybridrouter/v1/config.pb.h"
#include "util/text_proto.h"

namespace hr::util {
namespace {

namespace v1 = ::hybridrouter::v1;

// "LINE:COLUMN", 1-based as in messages; "?" when unknown.
std::string At(ConfigPositions::Location loc) {
  return loc.known() ? absl::StrCat(loc.line + 1, ":", loc.column + 1) : "?";
}

// The same policy in both forms, each field where the other has it.
constexpr char kJson[] = R"({
  "version": "v1",
  "regions": [{"name": "eu-west-1"},
              {"name": "us-east-1"}],
  "jurisdictions": [
    {"id": "eu", "countries": ["DE", "FR"],
     "cloud": {"allowedRegions": ["eu-west-1"], "when_unavailable": "FAIL_CLOSED"}}
  ]
})";
constexpr char kText[] = R"(
  version: "v1"
  regions {name: "eu-west-1"}
              regions {name: "us-east-1"}
    jurisdictions {id: "eu"
     cloud {allowed_regions: "eu-west-1" when_unavailable: FAIL_CLOSED}}
)";

TEST(ConfigPositionsTest, JsonFieldsAreFoundByTheirProtoNames) {
  absl::StatusOr<ConfigPositions> p = ConfigPositions::FromJson(kJson, v1::Policy::descriptor());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(At(p->Get("version", -1)), "2:3");  // a key: where the key starts
  EXPECT_EQ(At(p->Get("regions", 0)), "3:15");  // an element: where it starts
  EXPECT_EQ(At(p->Get("regions", 1)), "4:15");
  EXPECT_EQ(At(p->Get("regions", 2)), "?");
  EXPECT_EQ(At(p->Find("regions[1].name")), "4:16");
  EXPECT_EQ(At(p->Find("jurisdictions[0].countries[1]")), "6:38");
  // lowerCamel and proto names alike.
  EXPECT_EQ(At(p->Find("jurisdictions[0].cloud.allowed_regions[0]")), "7:35");
  EXPECT_EQ(At(p->Find("jurisdictions[0].cloud.when_unavailable")), "7:49");
  // A path that goes further than the file: the deepest part it has.
  EXPECT_EQ(At(p->Find("jurisdictions[0].cloud.consent_required")), "7:6");
  EXPECT_EQ(At(p->Find("default_rule.id")), "?");
  ASSERT_NE(p->Nested("jurisdictions", 0), nullptr);
  EXPECT_EQ(p->Nested("version", -1), nullptr);
}

TEST(ConfigPositionsTest, TextFormatPositionsAreReadTheSameWay) {
  v1::Policy policy;
  std::vector<std::string> problems;
  ConfigPositions p;
  ASSERT_TRUE(ParseConfig("p.textproto", kText, &policy, &problems, &p));
  EXPECT_EQ(At(p.Get("version", -1)), "2:3");
  EXPECT_EQ(At(p.Get("regions", 1)), "4:15");
  EXPECT_EQ(At(p.Find("regions[1].name")), "4:24");
  EXPECT_EQ(At(p.Find("jurisdictions[0].cloud.allowed_regions[0]")), "6:13");
  EXPECT_EQ(At(p.Find("jurisdictions[0].cloud.when_unavailable")), "6:42");
}

TEST(ConfigPositionsTest, KeysWithEscapesUnknownKeysAndAnyJsonValue) {
  const std::string json =
      "{\"v\\\"x\": [1, {\"a\": null}, [true, false]],\n"
      " \"version\": \"a\\\"b\", \"colour\": {\"deep\": 1.5e3}}";
  absl::StatusOr<ConfigPositions> p = ConfigPositions::FromJson(json, v1::Policy::descriptor());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(At(p->Get("v\"x", 1)), "1:14");  // a key the message lacks keeps its name
  EXPECT_EQ(At(p->Get("v\"x", 2)), "1:27");
  EXPECT_EQ(At(p->Find("version")), "2:2");
  EXPECT_EQ(At(p->Find("colour.deep")), "2:32");
}

TEST(ConfigPositionsTest, TextThatIsNotJsonSaysWhereAndWhy) {
  auto error_of = [](const std::string& text) {
    return std::string(
        ConfigPositions::FromJson(text, v1::Policy::descriptor()).status().message());
  };
  EXPECT_EQ(error_of("{\n  \"version\": \"x\",\n  \"regions\": [,]\n}"),
            "3:15: syntax error while parsing value - unexpected ','; expected '[', '{', or a "
            "literal");
  EXPECT_EQ(error_of("{\"a\": 1} x"),
            "1:10: syntax error while parsing value - invalid literal; last read: '1} x'; expected "
            "end of input");
  EXPECT_EQ(error_of(""),
            "1:1: syntax error while parsing value - unexpected end of input; expected '[', '{', "
            "or a literal");
  // Deep nesting is an error or a result, never a crashed stack.
  EXPECT_TRUE(ConfigPositions::FromJson(std::string(200000, '[') + std::string(200000, ']'),
                                        v1::Policy::descriptor())
                  .ok());
}

}  // namespace
}  // namespace hr::util
