#include "router/complexity_model.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "router/complexity.h"
#include "router/complexity_trainer.h"
#include "router/routing_eval.h"
#include "router/text_features.h"

namespace hr::router {
namespace {

namespace v1 = ::hybridrouter::v1;

TEST(TextFeaturesTest, WordsCjkAndNumbersBecomeStableHashes) {
  TextFeatures a, b, c;
  ExtractTextFeatures("Solve 12 + 7", &a);
  ExtractTextFeatures("solve 99 + 1", &b);  // case folded; "12" and "99" share a shape
  ExtractTextFeatures("你好", &c);
  ASSERT_EQ(a.hashes.size(), 6u);  // 3 words (solve, #2, #1) + 2 bigrams + "+"
  EXPECT_EQ(a.hashes, b.hashes);
  TextFeatures d;
  ExtractTextFeatures("solve 123 + 1", &d);  // a longer number is another feature
  EXPECT_NE(a.hashes[2], d.hashes[2]);
  EXPECT_EQ(c.hashes.size(), 3u);       // 2 characters + 1 bigram
  EXPECT_GT(c.dense[4], 0.99f);         // CJK share
  EXPECT_EQ(StableHash("abc"), 0xe16801510db89efdULL);  // FNV-1a 64, fixed forever
}

TEST(TextFeaturesTest, WordsOfAnyLengthAndPunctuationRuns) {
  auto hashes = [](absl::string_view text) {
    TextFeatures f;
    ExtractTextFeatures(text, &f);
    return f.hashes;
  };
  // Words are hashed eight bytes at a time: every byte counts, long words too.
  EXPECT_NE(hashes("internationalization"), hashes("internationalizatiom"));
  EXPECT_NE(hashes("abcdefgh"), hashes("abcdefghi"));
  EXPECT_EQ(hashes("Pneumonoultramicroscopic"), hashes("pneumonoultramicroscopic"));
  // A punctuation run is one feature: "==" is not "=" twice, nor "= =".
  EXPECT_EQ(hashes("a == b").size(), 4u);  // a, "==", b, the bigram a b
  EXPECT_NE(hashes("a == b"), hashes("a = = b"));
  EXPECT_NE(hashes("x->y"), hashes("x-y"));
  // Runs longer than four characters keep their first four.
  EXPECT_EQ(hashes("=========="), hashes("====="));
}

TEST(TextFeaturesTest, DenseFeaturesCountWhatTheySay) {
  TextFeatures f;
  ExtractTextFeatures("Is 3 + 4 = 7?\nWhy？ ∫ x", &f);
  // digits 3 of 14 non-space characters ("Is", "3", "+", "4", "=", "7", "?",
  // "Why", "？", "∫", "x")
  EXPECT_FLOAT_EQ(f.dense[1], 3.0f / 14);
  EXPECT_FLOAT_EQ(f.dense[2], 3.0f / 8);  // + = ∫
  EXPECT_FLOAT_EQ(f.dense[3], 2.0f / 4);  // ? ？
  EXPECT_FLOAT_EQ(f.dense[4], 0.0f);      // no CJK characters
  EXPECT_FLOAT_EQ(f.dense[6], 1.0f / 16); // one line break
  TextFeatures empty;
  ExtractTextFeatures("", &empty);
  EXPECT_TRUE(empty.hashes.empty());
  for (float x : empty.dense) EXPECT_EQ(x, 0.0f);
}

std::vector<TrainingExample> ToyExamples() {
  // "integral" prompts need the strong model; "hello" prompts do not.
  std::vector<TrainingExample> out;
  for (int i = 0; i < 200; ++i) {
    TrainingExample e;
    bool hard = i % 2 == 0;
    ExtractTextFeatures(hard ? "compute the integral of this" : "hello there friend", &e.features);
    e.label = hard ? 1 : 0;
    out.push_back(std::move(e));
  }
  return out;
}

TEST(TrainerTest, LearnsASeparableProblemDeterministically) {
  TrainOptions o;
  o.hash_bits = 10;
  o.epochs = 3;
  int epochs_seen = 0;
  o.progress = [&](int, double) { ++epochs_seen; };
  v1::ComplexityModelWeights w = TrainComplexityModel(ToyExamples(), o);
  EXPECT_EQ(epochs_seen, 3);
  auto model = ComplexityModel::FromWeights(w);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_GT((*model)->Score("compute the integral of this"), 0.8);
  EXPECT_LT((*model)->Score("hello there friend"), 0.2);
  v1::ComplexityModelWeights again = TrainComplexityModel(ToyExamples(), o);
  EXPECT_EQ(w.SerializeAsString(), again.SerializeAsString());
}

TEST(TrainerTest, ShrinkTowardGroupMeansMixesEachLabelWithItsGroupsMean) {
  std::vector<TrainingExample> examples(6);
  const float labels[] = {1, 0, 0, 0, 1, 1};
  for (int i = 0; i < 6; ++i) examples[i].label = labels[i];
  // a: 1 0 0 (mean 1/3); b: 0 1 (mean 1/2); the last one has no group.
  const std::vector<std::string> groups = {"a", "a", "a", "b", "b", ""};
  ShrinkTowardGroupMeans(groups, 0.75, &examples);
  EXPECT_FLOAT_EQ(examples[0].label, 0.25f * 1 + 0.75f / 3);
  EXPECT_FLOAT_EQ(examples[1].label, 0.75f / 3);
  EXPECT_FLOAT_EQ(examples[2].label, 0.75f / 3);
  EXPECT_FLOAT_EQ(examples[3].label, 0.75f * 0.5f);
  EXPECT_FLOAT_EQ(examples[4].label, 0.25f + 0.75f * 0.5f);
  EXPECT_FLOAT_EQ(examples[5].label, 1);  // ungrouped: as it was

  ShrinkTowardGroupMeans(groups, 0, &examples);  // weight 0 changes nothing
  EXPECT_FLOAT_EQ(examples[3].label, 0.75f * 0.5f);
  ShrinkTowardGroupMeans(groups, 1, &examples);  // weight 1: the group's mean
  EXPECT_FLOAT_EQ(examples[0].label, examples[1].label);
}

// A model trained on ToyExamples (English only) with 2^10 buckets for 3 epochs.
v1::ComplexityModelWeights ToyWeights() {
  TrainOptions o;
  o.hash_bits = 10;
  o.epochs = 3;
  return TrainComplexityModel(ToyExamples(), o);
}

// Chinese prompts with the heuristic's verdicts (router/complexity.h): a
// greeting, and a word problem asked step by step.
constexpr char kZhEasy[] = "你好，今天天气怎么样？";
constexpr char kZhHard[] = "一个农场有鸡和兔共35只，脚共有94只。鸡和兔各有多少只？请一步一步计算。";

TEST(TrainerTest, CountsTheTrainingPromptsThatAreMostlyCjk) {
  std::vector<TrainingExample> examples = ToyExamples();  // 200 English prompts
  for (const char* text : {kZhEasy, kZhHard,
                           // CJK characters are 3 of the 4 letters; digits, symbols
                           // and spaces do not count
                           "请计算 3x + 7 = 22",
                           // half of the letters: counted
                           "abc 你好吗",
                           // fewer, or none: not counted
                           "abcd 你好吗", "compute 12 + 7"}) {
    TrainingExample e;
    ExtractTextFeatures(text, &e.features);
    examples.push_back(std::move(e));
  }
  TrainOptions o;
  o.hash_bits = 10;
  o.epochs = 1;
  EXPECT_EQ(TrainComplexityModel(examples, o).cjk_training_prompts(), 4);
}

TEST(ComplexityModelTest, MostlyCjkTextItWasNotTrainedOnGetsTheHeuristicOnItsScale) {
  v1::ComplexityModelWeights w = ToyWeights();
  ASSERT_EQ(w.cjk_training_prompts(), 0);
  w.set_threshold(0.2);
  auto model = ComplexityModel::FromWeights(w);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->covers_cjk());
  auto logit = [](double p) { return std::log(p / (1 - p)); };
  const double h_easy = HeuristicComplexityScore(kZhEasy),
               h_hard = HeuristicComplexityScore(kZhHard);
  ASSERT_LT(h_easy, 0.5);
  ASSERT_GE(h_hard, 0.5);
  for (const char* text : {kZhEasy, kZhHard}) {
    bool heuristic = false;
    const double score = (*model)->Score(text, &heuristic);
    EXPECT_TRUE(heuristic) << text;
    EXPECT_NEAR(logit(score), logit(HeuristicComplexityScore(text)) + logit(0.2), 1e-9) << text;
  }
  // The heuristic's own verdict, at the model's threshold.
  EXPECT_LT((*model)->Score(kZhEasy), 0.2);
  EXPECT_GE((*model)->Score(kZhHard), 0.2);
  // English text is the model's to score.
  bool heuristic = true;
  TextFeatures f;
  ExtractTextFeatures("compute the integral of this", &f);
  EXPECT_DOUBLE_EQ((*model)->Score("compute the integral of this", &heuristic), (*model)->Score(f));
  EXPECT_FALSE(heuristic);

  // Thresholds of 0 and 1 keep their meaning: all to the cloud, nothing to it.
  for (double t : {0.0, 1.0}) {
    w.set_threshold(t);
    auto edge = ComplexityModel::FromWeights(w);
    ASSERT_TRUE(edge.ok());
    for (const char* text : {kZhEasy, kZhHard}) {
      const double score = (*edge)->Score(text);
      EXPECT_TRUE(std::isfinite(score));
      EXPECT_EQ(score >= t, t == 0.0) << text << " at threshold " << t;
    }
  }
}

TEST(ComplexityModelTest, AModelTrainedOnEnoughCjkTextScoresItItself) {
  v1::ComplexityModelWeights w = ToyWeights();
  w.set_cjk_training_prompts(kMinCjkTrainingPrompts);
  auto model = ComplexityModel::FromWeights(w);
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE((*model)->covers_cjk());
  bool heuristic = true;
  TextFeatures f;
  ExtractTextFeatures(kZhHard, &f);
  EXPECT_DOUBLE_EQ((*model)->Score(kZhHard, &heuristic), (*model)->Score(f));
  EXPECT_FALSE(heuristic);
  // One fewer, and the heuristic scores it.
  w.set_cjk_training_prompts(kMinCjkTrainingPrompts - 1);
  model = ComplexityModel::FromWeights(w);
  ASSERT_TRUE(model.ok());
  (*model)->Score(kZhHard, &heuristic);
  EXPECT_TRUE(heuristic);
}

TEST(ComplexityModelTest, RefusesWeightsOfAnotherShape) {
  v1::ComplexityModelWeights w = TrainComplexityModel(ToyExamples(), {10, 1});
  v1::ComplexityModelWeights other_version = w;
  other_version.set_feature_version(kFeatureVersion + 1);
  EXPECT_EQ(ComplexityModel::FromWeights(other_version).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ComplexityModelWeights short_weights = w;
  short_weights.mutable_hashed_weights()->RemoveLast();
  EXPECT_EQ(ComplexityModel::FromWeights(short_weights).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComplexityModel::Load("/nonexistent.pb").status().code(), absl::StatusCode::kNotFound);
}

TEST(ComplexityModelTest, RefusesAThresholdOutsideZeroToOneAndWeightsThatAreNotNumbers) {
  const v1::ComplexityModelWeights w = TrainComplexityModel(ToyExamples(), {10, 1});
  ASSERT_TRUE(ComplexityModel::FromWeights(w).ok());
  auto error_of = [](const v1::ComplexityModelWeights& bad) {
    auto model = ComplexityModel::FromWeights(bad);
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(model.status().message());
  };
  v1::ComplexityModelWeights bad = w;
  bad.set_threshold(1.5);
  EXPECT_EQ(error_of(bad), "threshold 1.5 is not in [0, 1] (calibrate it with hr-train)");
  bad.set_threshold(std::nan(""));
  EXPECT_EQ(error_of(bad), "threshold nan is not in [0, 1] (calibrate it with hr-train)");
  bad = w;
  bad.set_hashed_weights(3, INFINITY);
  EXPECT_EQ(error_of(bad), "hashed weight 3 is inf, not a finite number");
  bad = w;
  bad.set_dense_weights(1, std::nanf(""));
  EXPECT_EQ(error_of(bad), "dense weight 1 is nan, not a finite number");
  bad = w;
  bad.set_bias(-INFINITY);
  EXPECT_EQ(error_of(bad), "bias -inf is not a finite number");
}

TEST(ComplexityModelTest, SaveAndLoadRoundTrip) {
  v1::ComplexityModelWeights w = TrainComplexityModel(ToyExamples(), {10, 1});
  w.set_threshold(0.37);
  std::string path = ::testing::TempDir() + "/weights.pb";
  ASSERT_TRUE(SaveComplexityWeights(w, path).ok());
  auto model = ComplexityModel::Load(path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_DOUBLE_EQ((*model)->threshold(), 0.37);
}

TEST(ComplexityModelTest, TheShippedModelLoads) {
  auto model = ComplexityModel::Load(HR_SOURCE_DIR "/models/complexity.pb");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_GT((*model)->threshold(), 0.0);
  EXPECT_LT((*model)->threshold(), 1.0);
}

TEST(ComplexityConfigTest, ThresholdIsTheModelsUnlessOverriddenWithinZeroToOne) {
  const std::string shipped = HR_SOURCE_DIR "/models/complexity.pb";
  auto from_file = LoadComplexityConfig(shipped, -1);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_DOUBLE_EQ(from_file->threshold, from_file->model->threshold());
  auto overridden = LoadComplexityConfig(shipped, 0.9);
  ASSERT_TRUE(overridden.ok());
  EXPECT_DOUBLE_EQ(overridden->threshold, 0.9);
  auto heuristic = LoadComplexityConfig("", -1);
  ASSERT_TRUE(heuristic.ok());
  EXPECT_EQ(heuristic->model, nullptr);
  EXPECT_DOUBLE_EQ(heuristic->threshold, 0.5);
  for (double bad : {1.5, -0.5, -2.0, std::nan("")}) {
    auto refused = LoadComplexityConfig(shipped, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(
        absl::StrContains(refused.status().message(), "--complexity_threshold must be in [0, 1]"))
        << refused.status();
  }
}

TEST(RoutingEvalTest, PerfectAndReversedOrders) {
  // Two prompts only the strong model gets right, two both get right.
  std::vector<Outcome> o = {{0.9, false, true}, {0.8, false, true}, {0.2, true, true},
                            {0.1, true, true}};
  RoutingMetrics m = EvaluateRouting(o);
  EXPECT_DOUBLE_EQ(m.weak_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.strong_accuracy, 1.0);
  // acc(k) for k=1..4: 0.75, 1, 1, 1 -> gains 0.5, 1, 1, 1 -> APGR 0.875.
  EXPECT_DOUBLE_EQ(m.apgr, 0.875);
  // 95% of 1.0 is first reached at k=2: saved 1 - 2/4.
  EXPECT_DOUBLE_EQ(m.saved_at_95, 0.5);
  for (auto& x : o) x.score = -x.score;  // the worst order
  RoutingMetrics r = EvaluateRouting(o);
  // acc(k): 0.5, 0.5, 0.75, 1 -> gains 0, 0, 0.5, 1 -> 0.375.
  EXPECT_DOUBLE_EQ(r.apgr, 0.375);
  EXPECT_DOUBLE_EQ(r.saved_at_95, 0.0);
}

TEST(RoutingEvalTest, RandomBaselineIsAboutAHalf) {
  std::vector<Outcome> o;
  for (int i = 0; i < 400; ++i) o.push_back({0, i % 3 == 0, i % 3 != 2});
  RoutingMetrics r = EvaluateRandomRouting(o, 50, 7);
  EXPECT_NEAR(r.apgr, 0.5, 0.05);
}

TEST(RoutingEvalTest, ThresholdForQualityStopsAtTheFirstGoodEnoughK) {
  std::vector<Outcome> o = {{0.9, false, true}, {0.8, false, true}, {0.2, true, true},
                            {0.1, true, true}};
  double local = 0;
  // 75% of the strong accuracy is reached by sending the top prompt only.
  EXPECT_DOUBLE_EQ(ThresholdForQuality(o, 0.75, &local), 0.9);
  EXPECT_DOUBLE_EQ(local, 0.75);
  EXPECT_DOUBLE_EQ(ThresholdForQuality(o, 1.0, &local), 0.8);
  EXPECT_DOUBLE_EQ(local, 0.5);
  EXPECT_GT(ThresholdForQuality(o, 0.5, &local), 1.0);  // the weak model alone suffices
  EXPECT_DOUBLE_EQ(local, 1.0);
}

TEST(RoutingEvalTest, ThresholdForCloudShare) {
  std::vector<double> scores = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  EXPECT_DOUBLE_EQ(ThresholdForCloudShare(scores, 0.3), 0.8);
  EXPECT_GT(ThresholdForCloudShare(scores, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(ThresholdForCloudShare(scores, 1.0), 0.1);
}

}  // namespace
}  // namespace hr::router
