// The demo's classifier rows and the shipped complexity model agree: the case the
// demo calls easy scores below the model's threshold and the hard one at or above
// it, through the classifier hr-device uses.
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
    const double score = classifier.Classify(messages).complexity;
    if (easy) EXPECT_LT(score, (*model)->threshold()) << c.label();
    if (hard) EXPECT_GE(score, (*model)->threshold()) << c.label();
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
}  // namespace hr
