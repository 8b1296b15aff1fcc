// hr-train as a user runs it: train, calibrate and eval on a small outcome file.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct ToolRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

class HrTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/hr_train_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }

  ToolRun HrTrain(std::vector<std::string> args) {
    args.insert(args.begin(), HR_BIN_DIR "/hr-train");
    Process p(args, absl::StrCat(dir_, "/run", ++runs_, ".log"));
    ToolRun r;
    r.exit_code = p.WaitExit(absl::Seconds(60));
    r.output = ReadFile(p.log_path());
    return r;
  }

  // `eval --json` of the model m.pb on `split`.
  google::protobuf::Struct EvalReport(const std::string& data, const std::string& split) {
    ToolRun r = HrTrain({"eval", "--data=" + data, "--model=" + dir_ + "/m.pb",
                         "--split=" + split, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    google::protobuf::Struct report;
    const size_t json = r.output.find('{');
    EXPECT_TRUE(json != std::string::npos &&
                google::protobuf::util::JsonStringToMessage(r.output.substr(json), &report).ok())
        << r.output;
    return report;
  }

  // The row for `family` of `eval --json` on the held-out (test) split.
  google::protobuf::Struct EvalRow(const std::string& data, const std::string& family) {
    google::protobuf::Struct report = EvalReport(data, "test");
    for (const auto& row : report.fields().at("families").list_value().values()) {
      if (row.struct_value().fields().at("family").string_value() == family) {
        return row.struct_value();
      }
    }
    ADD_FAILURE() << "no row for " << family;
    return {};
  }

  std::string dir_;
  int runs_ = 0;
};

double Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

// One outcome line: the cloud model right, and the local one too unless the cloud
// model `gains` on it; `source` left out when empty.
std::string OutcomeLine(const std::string& prompt, bool gains, const std::string& source = "") {
  return absl::StrCat("{", source.empty() ? "" : absl::StrCat("\"source\": \"", source, "\", "),
                      "\"prompt\": \"", prompt, "\", \"weak_correct\": ", gains ? "false" : "true",
                      ", \"strong_correct\": true}\n");
}

// Prompts made of the same random words whatever their source; the cloud model
// helps on source quiz/hard and not on quiz/easy, and on prompts with "integral"
// in them.
std::string WriteOutcomes(const std::string& path, bool words_tell) {
  const std::vector<std::string> words = {"apple", "river", "seven", "blue", "stone", "music",
                                          "quick", "cloud", "paper", "light", "north", "green"};
  std::mt19937 rng(3);
  std::ofstream out(path);
  for (int i = 0; i < 600; ++i) {
    bool hard = i % 2 == 0;
    std::string prompt = absl::StrCat("q", i);
    for (int k = 0; k < 6; ++k) absl::StrAppend(&prompt, " ", words[rng() % words.size()]);
    if (words_tell && hard) absl::StrAppend(&prompt, " integral");
    out << OutcomeLine(prompt, hard, hard ? "quiz/hard" : "quiz/easy");
  }
  return path;
}

TEST_F(HrTrainTest, LearnsWhatTheWordsTellAndReportsTheSourcePriorApart) {
  for (bool words_tell : {true, false}) {
    SCOPED_TRACE(words_tell ? "words tell" : "only the source tells");
    std::string data = WriteOutcomes(dir_ + "/outcomes.jsonl", words_tell);
    ToolRun train = HrTrain({"train", "--data=" + data, "--out=" + dir_ + "/m.pb", "--epochs=3"});
    ASSERT_EQ(train.exit_code, 0) << train.output;
    EXPECT_THAT(train.output, HasSubstr("epoch 3/3"));  // progress
    google::protobuf::Struct row = EvalRow(data, "quiz");
    // With about half the prompts gaining, a perfect order scores about 0.75 and a
    // random one 0.5. The source prior orders perfectly either way.
    EXPECT_NEAR(Field(row, "random_apgr"), 0.5, 0.05);
    const double prior = Field(row, "source_prior_apgr");
    EXPECT_GT(prior, 0.7);
    if (words_tell) {
      EXPECT_NEAR(Field(row, "apgr"), prior, 0.01);
    } else {
      EXPECT_LT(Field(row, "apgr"), prior - 0.08);  // random words: nothing to learn
    }
  }
}

// As WriteOutcomes, in Chinese: the cloud model helps on the prompts that ask
// for an integral (积分).
std::string WriteChineseOutcomes(const std::string& path) {
  const std::vector<std::string> words = {"苹果", "河流", "七个", "蓝色", "石头", "音乐",
                                          "快速", "云朵", "纸张", "光线", "北方", "绿色"};
  std::mt19937 rng(5);
  std::ofstream out(path);
  for (int i = 0; i < 400; ++i) {
    const bool hard = i % 2 == 0;
    std::string prompt = absl::StrCat("第", i, "题：");
    for (int k = 0; k < 6; ++k) absl::StrAppend(&prompt, words[rng() % words.size()]);
    if (hard) absl::StrAppend(&prompt, "的积分");
    out << OutcomeLine(prompt, hard);
  }
  return path;
}

TEST_F(HrTrainTest, AModelScoresChineseItselfOnlyOnceTrainedOnEnoughOfIt) {
  const std::string zh = WriteChineseOutcomes(dir_ + "/zh.jsonl");
  // Trained on English only: the heuristic scores the Chinese prompts, and eval
  // says so.
  const std::string en = WriteOutcomes(dir_ + "/en.jsonl", true);
  ToolRun train = HrTrain({"train", "--data=" + en, "--out=" + dir_ + "/m.pb", "--epochs=3"});
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_THAT(train.output, HasSubstr("0 of the "));
  EXPECT_THAT(train.output, HasSubstr("the heuristic scores such prompts in the model's place"));
  ToolRun eval = HrTrain({"eval", "--data=" + zh, "--model=" + dir_ + "/m.pb"});
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_THAT(eval.output, HasSubstr("prompts are mostly CJK text, which the model was not "
                                     "trained on; the heuristic scored them"));
  // Trained on the Chinese outcomes: the model scores them, and learns what the
  // words tell (a perfect order scores about 0.75 here).
  train = HrTrain({"train", "--data=" + zh, "--out=" + dir_ + "/m.pb", "--epochs=3"});
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_THAT(train.output, HasSubstr("the model scores such prompts itself"));
  eval = HrTrain({"eval", "--data=" + zh, "--model=" + dir_ + "/m.pb"});
  EXPECT_THAT(eval.output, ::testing::Not(HasSubstr("the heuristic scored them")));
  EXPECT_GT(Field(EvalRow(zh, "all"), "apgr"), 0.7);
}

// eval also ranks by the hand-written heuristic, which knows nothing of the data:
// where the cloud helps on the multi-step prompts, it orders them first; where it
// helps on the greetings, last.
TEST_F(HrTrainTest, EvalReportsTheHeuristicsRankingToo) {
  for (bool steps_gain : {true, false}) {
    SCOPED_TRACE(steps_gain ? "the cloud helps on the multi-step prompts" : "on the greetings");
    const std::string data = dir_ + "/outcomes.jsonl";
    {
      std::ofstream out(data);
      for (int i = 0; i < 400; ++i) {
        const bool steps = i % 2 == 0;
        const std::string prompt =
            steps ? absl::StrCat("Prove step by step that ", i, " + 7 = ", i + 7, ", then compute ",
                                 i, " * 3.")
                  : absl::StrCat("hello there friend ", std::string(1, 'a' + i % 26));
        out << OutcomeLine(prompt, /*gains=*/steps == steps_gain);
      }
    }
    ASSERT_EQ(HrTrain({"train", "--data=" + data, "--out=" + dir_ + "/m.pb"}).exit_code, 0);
    // About 0.75 for a perfect order with half the prompts gaining, 0.25 reversed,
    // 0.5 at random.
    const double apgr = Field(EvalRow(data, "all"), "heuristic_apgr");
    if (steps_gain) {
      EXPECT_GT(apgr, 0.65);
    } else {
      EXPECT_LT(apgr, 0.35);
    }
  }
}

TEST_F(HrTrainTest, CalibrateWritesTheThresholdForTheLocalShare) {
  std::string data = WriteOutcomes(dir_ + "/outcomes.jsonl", true);
  ASSERT_EQ(HrTrain({"train", "--data=" + data, "--out=" + dir_ + "/m.pb"}).exit_code, 0);
  ToolRun cal = HrTrain({"calibrate", "--data=" + data, "--model=" + dir_ + "/m.pb",
                     "--target_local_share=0.5"});
  ASSERT_EQ(cal.exit_code, 0) << cal.output;
  EXPECT_NEAR(Field(EvalReport(data, "all"), "local_share"), 0.5, 0.1);
}

// Prompts the heuristic scores (Chinese, for a model trained on English) go where
// it says whatever the threshold: calibrate counts them there and sets the
// threshold over the rest, so the local share comes out as asked. Here the 400
// Chinese prompts all stay local (the heuristic gives them about 0.36, which on
// the model's scale falls among the English prompts' scores), so half of 1,000
// local takes 100 of the 600 English ones.
TEST_F(HrTrainTest, CalibrateCountsThePromptsTheHeuristicScoresWhereTheyGo) {
  const std::string en = WriteOutcomes(dir_ + "/en.jsonl", true);
  const std::string mixed = dir_ + "/mixed.jsonl";
  {
    std::ofstream out(mixed);
    out << ReadFile(en);
    for (int i = 0; i < 400; ++i) {
      out << OutcomeLine(absl::StrCat("第", i, "题：苹果和石头，一共多少？"), i % 2 == 0);
    }
  }
  ASSERT_EQ(HrTrain({"train", "--data=" + en, "--out=" + dir_ + "/m.pb"}).exit_code, 0);
  for (double share : {0.5, 0.8}) {
    SCOPED_TRACE(share);
    ToolRun cal = HrTrain({"calibrate", "--data=" + mixed, "--model=" + dir_ + "/m.pb",
                           "--split=all", absl::StrCat("--target_local_share=", share)});
    ASSERT_EQ(cal.exit_code, 0) << cal.output;
    EXPECT_THAT(cal.output, HasSubstr("400 of the 1000 prompts are mostly CJK text"));
    EXPECT_NEAR(Field(EvalReport(mixed, "all"), "local_share"), share, 0.02) << cal.output;
  }
  // Fewer local answers than the Chinese prompts alone: not possible, and said.
  ToolRun cal = HrTrain({"calibrate", "--data=" + mixed, "--model=" + dir_ + "/m.pb", "--split=all",
                         "--target_local_share=0.2"});
  ASSERT_EQ(cal.exit_code, 0) << cal.output;
  EXPECT_THAT(cal.output, HasSubstr("the target cannot be met"));
  EXPECT_NEAR(Field(EvalReport(mixed, "all"), "local_share"), 0.4, 0.02);
}

TEST_F(HrTrainTest, CrossValidationReportsEachFamilyTheSameWayTwice) {
  std::string data = WriteOutcomes(dir_ + "/outcomes.jsonl", true);
  ToolRun first = HrTrain({"cv", "--data=" + data, "--folds=3", "--repeats=2"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("fit 6/6"));  // progress
  EXPECT_THAT(first.output, HasSubstr("3 folds x 2 repeats"));
  // The words tell which prompts gain, so every fold ranks them almost perfectly.
  const size_t row = first.output.find("\nquiz ");
  ASSERT_NE(row, std::string::npos) << first.output;
  double apgr = 0;
  ASSERT_EQ(std::sscanf(first.output.c_str() + row, "\nquiz %lf", &apgr), 1);
  EXPECT_GT(apgr, 0.7);
  // Deterministic: the same folds, seeds and numbers again (timings aside).
  ToolRun second = HrTrain({"cv", "--data=" + data, "--folds=3", "--repeats=2"});
  EXPECT_EQ(first.output.substr(first.output.find("cv:")),
            second.output.substr(second.output.find("cv:")));
}

TEST_F(HrTrainTest, BadFlagsAreRefusedWithWhatIsWrong) {
  std::string data = WriteOutcomes(dir_ + "/outcomes.jsonl", true);
  ToolRun r = HrTrain({"cv", "--data=" + data, "--folds=1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--folds must be at least 2"));
  // More folds than prompts would leave folds with nothing to score.
  r = HrTrain({"cv", "--data=" + data, "--folds=100000"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--folds (100000) is more than the"));
  EXPECT_THAT(r.output, Not(HasSubstr("fit 1/")));
  r = HrTrain({"train", "--data=" + data, "--out=" + dir_ + "/m.pb", "--subject_smoothing=2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--subject_smoothing is 0..1"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--epochs=0", "--epochs must be at least 1"},
      {"--hash_bits=40", "--hash_bits must be 8 to 24"},
      {"--hash_bits=4", "--hash_bits must be 8 to 24"},
      {"--learning_rate=0", "--learning_rate must be positive"},
      {"--l2=-0.1", "--l2 must not be negative"},
      {"--split=training", "--split must be train, validation, test or all, not 'training'"}};
  for (const auto& [flag, said] : bad) {
    r = HrTrain({"train", "--data=" + data, "--out=" + dir_ + "/m.pb", flag});
    EXPECT_EQ(r.exit_code, 1) << flag;
    EXPECT_THAT(r.output, HasSubstr(said)) << flag;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/m.pb"));
}

TEST_F(HrTrainTest, ReadsWindowsLineEndsAndSkipsBlankLines) {
  std::ofstream(dir_ + "/crlf.jsonl")
      << "{\"prompt\": \"a\", \"weak_correct\": true, \"strong_correct\": true}\r\n"
      << "\r\n   \r\n"
      << "{\"prompt\": \"b\", \"weak_correct\": false, \"strong_correct\": true}\r\n";
  ToolRun r = HrTrain(
      {"train", "--data=" + dir_ + "/crlf.jsonl", "--out=" + dir_ + "/m.pb", "--split=all"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("features of 2 prompts"));
}

TEST_F(HrTrainTest, BadInputSaysWhereAndFails) {
  std::ofstream(dir_ + "/bad.jsonl")
      << "{\"prompt\": \"ok\", \"weak_correct\": true, \"strong_correct\": false}\n{oops\n";
  ToolRun r = HrTrain({"train", "--data=" + dir_ + "/bad.jsonl", "--out=" + dir_ + "/m.pb",
                   "--split=all"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("bad.jsonl:2"));
  r = HrTrain({"calibrate", "--data=" + dir_ + "/bad.jsonl", "--model=" + dir_ + "/m.pb"});
  EXPECT_EQ(r.exit_code, 1);
  r = HrTrain({"eval", "--data=" + dir_ + "/missing.jsonl", "--model=" + dir_ + "/m.pb"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("missing.jsonl"));
}

// A record without an outcome is refused, not read as "wrong": a misspelt field
// name is an unknown field, which JSON reading ignores.
TEST_F(HrTrainTest, ARecordWithoutAnOutcomeSaysWhichAndWhere) {
  const std::string good =
      "{\"prompt\": \"a\", \"weak_correct\": true, \"strong_correct\": false}\n";
  const std::pair<std::string, std::string> cases[] = {
      {"{\"prompt\": \"b\", \"weak_corect\": true, \"strong_correct\": true}",
       "m.jsonl:2: `weak_correct` is missing"},
      {"{\"prompt\": \"b\", \"weak_correct\": false}", "m.jsonl:2: `strong_correct` is missing"},
      {"{\"prompt\": \"b\", \"weak_correct\": null, \"strong_correct\": true}",
       "m.jsonl:2: `weak_correct` is missing"},
      {"{\"weak_correct\": true, \"strong_correct\": true}",
       "m.jsonl:2: `prompt` is missing or empty"},
  };
  for (const auto& [line, error] : cases) {
    std::ofstream(dir_ + "/m.jsonl") << good << line << "\n";
    for (const char* command : {"train", "eval", "cv"}) {
      ToolRun r = HrTrain({command, "--data=" + dir_ + "/m.jsonl", "--out=" + dir_ + "/m.pb",
                           "--model=" + dir_ + "/m.pb", "--split=all"});
      EXPECT_EQ(r.exit_code, 1) << command << " " << line << "\n" << r.output;
      EXPECT_THAT(r.output, HasSubstr(error)) << command << " " << line;
    }
  }
  // false is an outcome too.
  std::ofstream(dir_ + "/m.jsonl")
      << good << "{\"prompt\": \"b\", \"weak_correct\": false, \"strong_correct\": false}\n";
  ToolRun r =
      HrTrain({"train", "--data=" + dir_ + "/m.jsonl", "--out=" + dir_ + "/m.pb", "--split=all"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// Nothing to learn from is an error, not a model trained on nothing.
TEST_F(HrTrainTest, NoRecordsIsAnError) {
  ToolRun r = HrTrain({"train", "--data=" + dir_, "--out=" + dir_ + "/m.pb"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot read " + dir_ + ": Is a directory"));
  std::ofstream(dir_ + "/empty.jsonl") << "\n";
  r = HrTrain({"train", "--data=" + dir_ + "/empty.jsonl", "--out=" + dir_ + "/m.pb"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("empty.jsonl holds no outcome records"));
  // One record falls in one split; the other two hold nothing to learn from.
  std::ofstream(dir_ + "/one.jsonl")
      << "{\"prompt\": \"a\", \"weak_correct\": false, \"strong_correct\": true}\n";
  int empty_splits = 0;
  for (const std::string split : {"train", "validation", "test"}) {
    r = HrTrain({"train", "--data=" + dir_ + "/one.jsonl", "--out=" + dir_ + "/" + split + ".pb",
                 "--split=" + split});
    if (r.exit_code == 0) continue;
    ++empty_splits;
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(r.output, HasSubstr("none of the 1 records of " + dir_ +
                                    "/one.jsonl falls in "
                                    "split '" +
                                    split + "'"));
    EXPECT_FALSE(std::ifstream(dir_ + "/" + split + ".pb").good()) << "no weights file is written";
  }
  EXPECT_EQ(empty_splits, 2);
  // eval and calibrate say the same of a split with nothing in it, rather than
  // print an empty table.
  ASSERT_EQ(HrTrain({"train", "--data=" + dir_ + "/one.jsonl", "--out=" + dir_ + "/all.pb",
                     "--split=all"})
                .exit_code,
            0);
  for (const std::string command : {"eval", "calibrate"}) {
    empty_splits = 0;
    for (const std::string split : {"train", "validation", "test"}) {
      r = HrTrain({command, "--data=" + dir_ + "/one.jsonl", "--model=" + dir_ + "/all.pb",
                   "--split=" + split, "--target_local_share=0.5"});
      if (r.exit_code == 0) continue;
      ++empty_splits;
      EXPECT_EQ(r.exit_code, 1) << command;
      EXPECT_THAT(r.output,
                  HasSubstr("falls in split '" + split + "' (--split all uses every record)"));
    }
    EXPECT_EQ(empty_splits, 2) << command;
  }
}

}  // namespace
}  // namespace hr::testing
