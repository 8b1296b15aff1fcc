// The demo's classifier rows and the shipped complexity model agree: the cases the
// demo calls easy score below the model's threshold and the hard ones at or above
// it, through the classifier hr-device uses. The Chinese ones are scored by the
// heuristic in the model's place, the English ones by the model.
#include <string>

#include "demo_cases.pb.h"
#include "gtest/gtest.h"
#include "router/classifier.h"
#include "router/complexity_model.h"
#include "util/text_proto.h"

namespace hr {
namespace {

TEST(DemoCasesTest, ShippedModelKeepsTheEasyCaseLocalAndSendsTheHardOneToTheCloud) {
  const std::string path = HR_SOURCE_DIR "/deploy/local/demo_cases.textproto";
  auto text = util::ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  hybridrouter::tools::DemoCases cases;
  std::vector<std::string> problems;
  ASSERT_TRUE(util::ParseTextProto(path, *text, &cases, &problems)) << problems.front();
  auto model = router::ComplexityModel::Load(HR_SOURCE_DIR "/models/complexity.pb");
  ASSERT_TRUE(model.ok()) << model.status();
  router::Classifier classifier(model->get());
  int checked = 0;
  for (const auto& c : cases.cases()) {
    const bool easy = c.label().find("easy (classifier)") != std::string::npos;
    const bool hard = c.label().find("hard (classifier)") != std::string::npos;
    if (!easy && !hard) continue;
    std::vector<router::MessageView> messages;
    for (const auto& m : c.request().messages()) messages.push_back({m.role(), m.content()});
    const router::Classification classified = classifier.Classify(messages);
    if (easy) EXPECT_LT(classified.complexity, (*model)->threshold()) << c.label();
    if (hard) EXPECT_GE(classified.complexity, (*model)->threshold()) << c.label();
    EXPECT_EQ(classified.complexity_by_heuristic_fallback, c.label().rfind("zh-", 0) == 0)
        << c.label();
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace hr
