// hr-train: trains, evaluates and calibrates the complexity model, and measures
// the sensitive-data detectors on labelled data.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "records.pb.h"
#include "router/complexity.h"
#include "router/complexity_model.h"
#include "router/complexity_trainer.h"
#include "router/detectors.h"
#include "router/routing_eval.h"
#include "router/text_features.h"
#include "util/flags.h"
#include "util/text_proto.h"

ABSL_FLAG(std::string, data, "", "input: outcome JSONL (train, eval, calibrate) or presidio "
          "JSON (detectors)");
ABSL_FLAG(std::string, model, "models/complexity.pb", "weights file to read (eval, calibrate)");
ABSL_FLAG(std::string, out, "", "weights file to write (train; calibrate: default --model)");
ABSL_FLAG(std::string, split, "", "which part of the data: train, validation, test or all "
          "(default: train for train, validation for calibrate, test for eval)");
ABSL_FLAG(std::string, label, "gain", "what the model predicts: weak_wrong (the local "
          "model fails) or gain (the local model fails and the cloud model succeeds)");
ABSL_FLAG(double, subject_smoothing, 0.85,
          "train, cv: mix each prompt's label with the mean "
          "label of its source's subject (\"mmlu/anatomy\"; sources without a / are left "
          "alone) by this weight, 0..1 (0: the prompt's own label)");
ABSL_FLAG(int, epochs, 4, "training epochs");
ABSL_FLAG(int, hash_bits, 16, "2^hash_bits feature buckets");
ABSL_FLAG(double, learning_rate, 0.1, "Adagrad step size");
ABSL_FLAG(double, l2, 1e-3, "L2 weight decay");
ABSL_FLAG(uint64_t, seed, 1, "seed for example order and the random baseline");
ABSL_FLAG(int, folds, 5, "cv: folds of the train and validation splits");
ABSL_FLAG(int, repeats, 4, "cv: times to repeat the cross-validation with other folds and seeds");
ABSL_FLAG(double, target_local_share, -1, "calibrate: share of requests to keep local (0..1)");
ABSL_FLAG(double, target_quality, -1, "calibrate: fraction of the cloud model's accuracy to "
          "keep (e.g. 0.95), with as many local answers as possible");
ABSL_FLAG(std::string, show_errors, "", "detectors: print the misses and false alarms of this "
          "entity type (e.g. PHONE_NUMBER)");
ABSL_FLAG(bool, json, false, "eval, detectors: print JSON");

namespace {

namespace v1 = ::hybridrouter::v1;
namespace tools = ::hybridrouter::tools;
using hr::router::Outcome;
using hr::router::RoutingMetrics;

constexpr char kUsage[] = R"(The complexity model and detector measurements.

  hr-train train     --data dev.jsonl --out models/complexity.pb [--split train]
  hr-train eval      --data dev.jsonl --model models/complexity.pb [--split test]
  hr-train calibrate --data dev.jsonl --model models/complexity.pb
                     (--target_local_share 0.5 | --target_quality 0.95) [--split validation]
  hr-train cv        --data dev.jsonl [--folds 5 --repeats 4] [training flags]
  hr-train detectors --data presidio_generated_large.json

Outcome data is JSONL: {"prompt", "weak_correct", "strong_correct", optional "source"}.
Each prompt falls in one split by a stable hash of its text: 70% train, 10%
validation, 20% test. Train on train, calibrate on validation, report on test;
choose training flags with cv, which never reads test.
)";

struct Record {
  std::string family;  // "mmlu" for the source "mmlu/anatomy"
  std::string source;
  std::string prompt;
  bool weak = false, strong = false;
};

std::string SplitOf(absl::string_view prompt) {
  uint64_t b = hr::router::StableHash(prompt) % 10;
  return b < 7 ? "train" : (b == 7 ? "validation" : "test");
}

// The records of `split` ("all": every one).
std::vector<Record> InSplit(const std::vector<Record>& records, const std::string& split) {
  if (split == "all") return records;
  std::vector<Record> out;
  for (const Record& r : records) {
    if (SplitOf(r.prompt) == split) out.push_back(r);
  }
  return out;
}

// The records of `split` among `records` (read from `path`), or why there are none.
absl::StatusOr<std::vector<Record>> NonEmptySplit(const std::vector<Record>& records,
                                                  const std::string& split,
                                                  const std::string& path) {
  std::vector<Record> in_split = InSplit(records, split);
  if (in_split.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("none of the ", records.size(), " records of ",
                                                   path, " falls in split '", split,
                                                   "' (--split all uses every record)"));
  }
  return in_split;
}

// What a record lacks that training and evaluation need, or "".
absl::string_view MissingOutcomeField(const tools::OutcomeRecord& r) {
  if (r.prompt().empty()) return "`prompt` is missing or empty";
  if (!r.has_weak_correct()) {
    return "`weak_correct` is missing (true or false: was the local model's answer acceptable?)";
  }
  if (!r.has_strong_correct()) {
    return "`strong_correct` is missing (true or false: was the cloud model's answer "
           "acceptable?)";
  }
  return "";
}

absl::StatusOr<std::vector<Record>> ReadOutcomes(const std::string& path, const std::string& split) {
  if (split != "train" && split != "validation" && split != "test" && split != "all") {
    return absl::InvalidArgumentError(
        absl::StrCat("--split must be train, validation, test or all, not '", split, "'"));
  }
  // The whole file at once: its records stay in memory anyway.
  absl::StatusOr<std::string> text = hr::util::ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<Record> out;
  int lineno = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++lineno;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    tools::OutcomeRecord r;
    if (absl::Status s = hr::util::ParseJsonLine(line, &r); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", lineno, ": ", s.message()));
    }
    if (absl::string_view missing = MissingOutcomeField(r); !missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", lineno, ": ", missing));
    }
    std::vector<std::string> parts = absl::StrSplit(r.source(), '/');
    out.push_back({parts[0].empty() ? "unknown" : parts[0], r.source(), r.prompt(),
                   r.weak_correct(), r.strong_correct()});
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds no outcome records (one JSON object a line)"));
  }
  return NonEmptySplit(out, split, path);
}

std::string SplitFlag(const char* fallback) {
  std::string s = absl::GetFlag(FLAGS_split);
  return s.empty() ? fallback : s;
}

int Die(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  return 1;
}

// The flags train and cv learn with. The bucket range is the one
// ComplexityModel::Load accepts, so no trained model is refused at start-up.
absl::Status CheckTrainingFlags() {
  const std::string label = absl::GetFlag(FLAGS_label);
  if (label != "weak_wrong" && label != "gain") {
    return absl::InvalidArgumentError("--label must be weak_wrong or gain");
  }
  const double smoothing = absl::GetFlag(FLAGS_subject_smoothing);
  if (!(smoothing >= 0 && smoothing <= 1)) {
    return absl::InvalidArgumentError("--subject_smoothing is 0..1");
  }
  if (absl::GetFlag(FLAGS_epochs) < 1) {
    return absl::InvalidArgumentError("--epochs must be at least 1");
  }
  const int bits = absl::GetFlag(FLAGS_hash_bits);
  if (bits < hr::router::kMinHashBits || bits > hr::router::kMaxHashBits) {
    return absl::InvalidArgumentError(absl::StrCat("--hash_bits must be ", hr::router::kMinHashBits,
                                                   " to ", hr::router::kMaxHashBits,
                                                   " (the model loader's range), not ", bits));
  }
  if (!(absl::GetFlag(FLAGS_learning_rate) > 0)) {
    return absl::InvalidArgumentError("--learning_rate must be positive");
  }
  if (!(absl::GetFlag(FLAGS_l2) >= 0)) {
    return absl::InvalidArgumentError("--l2 must not be negative");
  }
  return absl::OkStatus();
}

// The training examples of `records`: features, and the label --label names,
// mixed with its subject's mean by --subject_smoothing.
std::vector<hr::router::TrainingExample> MakeExamples(const std::vector<Record>& records) {
  const bool gain = absl::GetFlag(FLAGS_label) == "gain";
  std::vector<hr::router::TrainingExample> examples(records.size());
  std::vector<std::string> subjects(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    hr::router::ExtractTextFeatures(r.prompt, &examples[i].features);
    examples[i].label = gain ? (r.strong && !r.weak) : !r.weak;
    if (r.source != r.family) subjects[i] = r.source;  // "mmlu/anatomy", not "gsm8k"
  }
  hr::router::ShrinkTowardGroupMeans(subjects, absl::GetFlag(FLAGS_subject_smoothing), &examples);
  return examples;
}

hr::router::TrainOptions TrainOptionsFromFlags() {
  hr::router::TrainOptions o;
  o.hash_bits = absl::GetFlag(FLAGS_hash_bits);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  o.l2 = absl::GetFlag(FLAGS_l2);
  o.seed = absl::GetFlag(FLAGS_seed);
  return o;
}

int Train() {
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Die(absl::InvalidArgumentError("--out is required"));
  if (absl::Status s = CheckTrainingFlags(); !s.ok()) return Die(s);
  std::string split = SplitFlag("train");
  auto records = ReadOutcomes(absl::GetFlag(FLAGS_data), split);
  if (!records.ok()) return Die(records.status());
  const std::string label = absl::GetFlag(FLAGS_label);
  std::fprintf(stderr, "extracting features of %zu prompts (split %s)\n", records->size(),
               split.c_str());
  std::vector<hr::router::TrainingExample> examples = MakeExamples(*records);
  hr::router::TrainOptions o = TrainOptionsFromFlags();
  absl::Time start = absl::Now();
  o.progress = [&](int epoch, double loss) {
    std::fprintf(stderr, "epoch %d/%d: log loss %.4f (%.1f s)\n", epoch, o.epochs, loss,
                 absl::ToDoubleSeconds(absl::Now() - start));
  };
  v1::ComplexityModelWeights w = hr::router::TrainComplexityModel(examples, o);
  w.set_label(label);
  w.set_threshold_note("uncalibrated");
  w.set_provenance(absl::StrFormat(
      "data=%s split=%s n=%d label=%s subject_smoothing=%g epochs=%d hash_bits=%d lr=%g l2=%g "
      "seed=%d",
      absl::GetFlag(FLAGS_data), split, examples.size(), label,
      absl::GetFlag(FLAGS_subject_smoothing), o.epochs, o.hash_bits, o.learning_rate, o.l2,
      o.seed));
  if (auto s = hr::router::SaveComplexityWeights(w, out); !s.ok()) return Die(s);
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  std::fprintf(stderr, "%lld of the %zu prompts are mostly CJK text%s\n",
               static_cast<long long>(w.cjk_training_prompts()), examples.size(),
               w.cjk_training_prompts() >= hr::router::kMinCjkTrainingPrompts
                   ? ": the model scores such prompts itself"
                   : absl::StrCat(" (under ", hr::router::kMinCjkTrainingPrompts,
                                  "): the heuristic scores such prompts in the model's place")
                         .c_str());
  return 0;
}

// Scores `r` as hr-device would, counting in *heuristic the prompts the model
// left to the heuristic.
double ScoreAsDevice(const hr::router::ComplexityModel& model, const Record& r, int* heuristic) {
  bool by_heuristic = false;
  const double score = model.Score(r.prompt, &by_heuristic);
  *heuristic += by_heuristic;
  return score;
}

// Says how many prompts the heuristic scored, if any.
void NoteHeuristic(int heuristic, size_t n) {
  if (heuristic == 0) return;
  std::fprintf(stderr,
               "note: %d of the %zu prompts are mostly CJK text, which the model was not trained "
               "on; the heuristic scored them, and they go to the cloud at its 0.5 whatever the "
               "model's threshold\n",
               heuristic, n);
}

std::map<std::string, std::vector<Outcome>> ScoreByFamily(
    const std::vector<Record>& records, absl::FunctionRef<double(const Record&)> score) {
  std::map<std::string, std::vector<Outcome>> out;
  for (const Record& r : records) {
    Outcome o{score(r), r.weak, r.strong};
    out[r.family].push_back(o);
    out["all"].push_back(o);
  }
  return out;
}

// A reference, not a router: one told each prompt's source (such as
// "mmlu/anatomy"), which scores it by how much better the cloud model did than the
// local one on that source in `train`. It shows what knowing the topic alone is
// worth, which word features can at best learn.
class SourcePrior {
 public:
  explicit SourcePrior(const std::vector<Record>& train) {
    for (const Record& r : train) {
      const int gain = static_cast<int>(r.strong) - static_cast<int>(r.weak);
      Gain& g = by_source_[r.source];
      ++g.n;
      g.sum += gain;
      ++overall_.n;
      overall_.sum += gain;
    }
  }

  double Score(const Record& r) const {
    auto it = by_source_.find(r.source);
    const Gain& g = it != by_source_.end() ? it->second : overall_;
    // Break the ties within a source in a fixed pseudo-random order.
    return g.Mean() + (hr::router::StableHash(r.prompt) % 1000) * 1e-9;
  }

 private:
  struct Gain {
    int n = 0, sum = 0;  // prompts; strong_correct - weak_correct summed over them
    double Mean() const { return n ? static_cast<double>(sum) / n : 0; }
  };
  std::map<std::string, Gain> by_source_;
  Gain overall_;
};

int Eval() {
  std::string split = SplitFlag("test");
  auto all = ReadOutcomes(absl::GetFlag(FLAGS_data), "all");
  if (!all.ok()) return Die(all.status());
  absl::StatusOr<std::vector<Record>> in_split =
      NonEmptySplit(*all, split, absl::GetFlag(FLAGS_data));
  if (!in_split.ok()) return Die(in_split.status());
  const std::vector<Record>& records = *in_split;
  auto model = hr::router::ComplexityModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Die(model.status());
  int heuristic = 0;
  auto families = ScoreByFamily(
      records, [&](const Record& r) { return ScoreAsDevice(**model, r, &heuristic); });
  NoteHeuristic(heuristic, records.size());
  const SourcePrior source_prior(InSplit(*all, "train"));
  auto prior =
      ScoreByFamily(records, [&](const Record& r) { return source_prior.Score(r); });
  // The hand-written score the device falls back to (no model file, or text the
  // model was not trained on), for comparison.
  auto by_heuristic = ScoreByFamily(
      records, [](const Record& r) { return hr::router::HeuristicComplexityScore(r.prompt); });
  bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("split=%s model=%s\n", split.c_str(), absl::GetFlag(FLAGS_model).c_str());
    std::printf("%-8s %6s %7s %7s | %6s %9s | %11s %16s | %17s %22s | %14s %19s\n", "family", "n",
                "weak", "strong", "APGR", "saved@95", "random APGR", "random saved@95",
                "source-prior APGR", "source-prior saved@95", "heuristic APGR",
                "heuristic saved@95");
  }
  std::vector<std::string> rows;
  for (const auto& [family, outcomes] : families) {
    RoutingMetrics m = hr::router::EvaluateRouting(outcomes);
    RoutingMetrics r = hr::router::EvaluateRandomRouting(outcomes, 200, absl::GetFlag(FLAGS_seed));
    RoutingMetrics p = hr::router::EvaluateRouting(prior[family]);
    RoutingMetrics h = hr::router::EvaluateRouting(by_heuristic[family]);
    if (json) {
      rows.push_back(absl::StrFormat(
          "{\"family\":\"%s\",\"n\":%d,\"weak_accuracy\":%.4f,\"strong_accuracy\":%.4f,"
          "\"apgr\":%.4f,\"saved_at_95\":%.4f,\"random_apgr\":%.4f,\"random_saved_at_95\":%.4f,"
          "\"source_prior_apgr\":%.4f,\"source_prior_saved_at_95\":%.4f,"
          "\"heuristic_apgr\":%.4f,\"heuristic_saved_at_95\":%.4f}",
          family, m.n, m.weak_accuracy, m.strong_accuracy, m.apgr, m.saved_at_95, r.apgr,
          r.saved_at_95, p.apgr, p.saved_at_95, h.apgr, h.saved_at_95));
    } else {
      std::printf(
          "%-8s %6d %7.3f %7.3f | %6.3f %9.3f | %11.3f %16.3f | %17.3f %22.3f | %14.3f %19.3f\n",
          family.c_str(), m.n, m.weak_accuracy, m.strong_accuracy, m.apgr, m.saved_at_95, r.apgr,
          r.saved_at_95, p.apgr, p.saved_at_95, h.apgr, h.saved_at_95);
    }
  }
  // What the model's calibrated threshold does on this split.
  const double t = (*model)->threshold();
  int local = 0, correct = 0, strong = 0;
  for (const Outcome& o : families["all"]) {
    bool cloud = o.score >= t;
    local += !cloud;
    correct += cloud ? o.strong_correct : o.weak_correct;
    strong += o.strong_correct;
  }
  const int n = static_cast<int>(families["all"].size());
  double local_share = n ? static_cast<double>(local) / n : 0;
  double accuracy = n ? static_cast<double>(correct) / n : 0;
  double of_strong = strong ? static_cast<double>(correct) / strong : 0;
  if (json) {
    std::printf("{\"split\":\"%s\",\"families\":[%s],\"threshold\":%.6f,"
                "\"local_share\":%.4f,\"accuracy\":%.4f,\"of_strong\":%.4f}\n",
                split.c_str(), absl::StrJoin(rows, ",").c_str(), t, local_share, accuracy,
                of_strong);
  } else {
    std::printf("at the model's threshold %.4f (%s): %.1f%% local, accuracy %.3f = %.1f%% of "
                "the cloud model's\n",
                t, (*model)->weights().threshold_note().c_str(), 100 * local_share, accuracy,
                100 * of_strong);
  }
  return 0;
}

// Cross-validation on the train and validation splits (never test): for each
// repeat, the prompts fall in --folds folds by a hash of their text and the
// repeat; a model trained with the training flags on all folds but one is scored
// on that one. Prints the mean and spread of APGR and saved@95 per family over
// all folds and repeats, next to the source prior's, for choosing flags.
int CrossValidate() {
  if (absl::Status s = CheckTrainingFlags(); !s.ok()) return Die(s);
  const int folds = absl::GetFlag(FLAGS_folds), repeats = absl::GetFlag(FLAGS_repeats);
  if (folds < 2 || repeats < 1) {
    return Die(absl::InvalidArgumentError("--folds must be at least 2 and --repeats at least 1"));
  }
  auto all = ReadOutcomes(absl::GetFlag(FLAGS_data), "all");
  if (!all.ok()) return Die(all.status());
  std::vector<const Record*> records;  // train and validation
  for (const Record& r : *all) {
    if (SplitOf(r.prompt) != "test") records.push_back(&r);
  }
  if (static_cast<size_t>(folds) > records.size()) {
    return Die(absl::InvalidArgumentError(
        absl::StrCat("--folds (", folds, ") is more than the ", records.size(),
                     " prompts of the train and validation splits")));
  }
  struct Scores {
    std::vector<double> apgr, saved, prior_apgr;
  };
  std::map<std::string, Scores> scores;
  const hr::router::TrainOptions base = TrainOptionsFromFlags();
  absl::Time start = absl::Now();
  for (int rep = 0; rep < repeats; ++rep) {
    for (int fold = 0; fold < folds; ++fold) {
      std::vector<Record> train, held_out;
      for (const Record* r : records) {
        const uint64_t h = hr::router::StableHash(absl::StrCat(r->prompt, "#", rep)) >> 32;
        (static_cast<int>(h % folds) == fold ? held_out : train).push_back(*r);
      }
      hr::router::TrainOptions o = base;
      o.seed = base.seed + rep;
      auto model = hr::router::ComplexityModel::FromWeights(
          hr::router::TrainComplexityModel(MakeExamples(train), o));
      if (!model.ok()) return Die(model.status());
      const SourcePrior prior(train);
      auto by_model =
          ScoreByFamily(held_out, [&](const Record& r) { return (*model)->Score(r.prompt); });
      auto by_prior = ScoreByFamily(held_out, [&](const Record& r) { return prior.Score(r); });
      for (const auto& [family, outcomes] : by_model) {
        RoutingMetrics m = hr::router::EvaluateRouting(outcomes);
        Scores& s = scores[family];
        s.apgr.push_back(m.apgr);
        s.saved.push_back(m.saved_at_95);
        s.prior_apgr.push_back(hr::router::EvaluateRouting(by_prior[family]).apgr);
      }
      std::fprintf(stderr, "fit %d/%d (%.1f s)\n", rep * folds + fold + 1, repeats * folds,
                   absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  auto mean_sd = [](const std::vector<double>& v) {
    double mean = 0, sq = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) sq += (x - mean) * (x - mean);
    return std::pair{mean, v.size() > 1 ? std::sqrt(sq / (v.size() - 1)) : 0.0};
  };
  std::printf("cv: %d folds x %d repeats of the train and validation splits (%zu prompts)\n", folds,
              repeats, records.size());
  std::printf("%-8s %15s %15s %17s\n", "family", "APGR (sd)", "saved@95 (sd)", "source-prior APGR");
  for (const auto& [family, s] : scores) {
    auto [a, a_sd] = mean_sd(s.apgr);
    auto [v, v_sd] = mean_sd(s.saved);
    std::printf("%-8s %7.3f (%.3f) %7.3f (%.3f) %17.3f\n", family.c_str(), a, a_sd, v, v_sd,
                mean_sd(s.prior_apgr).first);
  }
  return 0;
}

int Calibrate() {
  double local_share = absl::GetFlag(FLAGS_target_local_share);
  double quality = absl::GetFlag(FLAGS_target_quality);
  if ((local_share < 0) == (quality < 0)) {
    return Die(absl::InvalidArgumentError(
        "give exactly one of --target_local_share and --target_quality"));
  }
  if (local_share > 1) return Die(absl::InvalidArgumentError("--target_local_share is 0..1"));
  if (quality > 1) return Die(absl::InvalidArgumentError("--target_quality is 0..1"));
  std::string split = SplitFlag("validation");
  auto records = ReadOutcomes(absl::GetFlag(FLAGS_data), split);
  if (!records.ok()) return Die(records.status());
  auto model = hr::router::ComplexityModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Die(model.status());
  // A prompt the heuristic scores goes to the cloud at the heuristic's 0.5 whatever
  // the threshold, so it is counted where it goes (above or below every score the
  // threshold can take) and the threshold is set over the rest.
  constexpr double kAlwaysCloud = 2.0, kAlwaysLocal = -1.0;
  int heuristic = 0;
  std::vector<Outcome> outcomes = ScoreByFamily(*records, [&](const Record& r) {
    bool by_heuristic = false;
    const double score = (*model)->Score(r.prompt, &by_heuristic);
    if (!by_heuristic) return score;
    ++heuristic;
    return score >= (*model)->threshold() ? kAlwaysCloud : kAlwaysLocal;
  })["all"];
  NoteHeuristic(heuristic, outcomes.size());
  std::vector<double> scores;
  for (const Outcome& o : outcomes) scores.push_back(o.score);
  double threshold;
  std::string note;
  if (local_share >= 0) {
    threshold = hr::router::ThresholdForCloudShare(scores, 1 - local_share);
    note = absl::StrFormat("local_share=%.2f on split %s (n=%d)", local_share, split,
                           outcomes.size());
  } else {
    double local = 0;
    threshold = hr::router::ThresholdForQuality(outcomes, quality, &local);
    note = absl::StrFormat("quality=%.2f of cloud accuracy on split %s (n=%d): %.1f%% local",
                           quality, split, outcomes.size(), 100 * local);
  }
  if (threshold >= kAlwaysCloud || threshold <= kAlwaysLocal) {
    // The prompts the heuristic sends one way are more than the target allows, so
    // all the others go the other way. The threshold stays inside (0, 1), where the
    // heuristic's scores keep their place around it.
    const bool all_local = threshold >= kAlwaysCloud;
    double lowest = 1, highest = 0;
    for (double x : scores) {
      if (x == kAlwaysCloud || x == kAlwaysLocal) continue;
      lowest = std::min(lowest, x);
      highest = std::max(highest, x);
    }
    threshold = heuristic == static_cast<int>(scores.size()) ? (*model)->threshold()
                : all_local                                  ? std::nextafter(highest, 1.0)
                                                             : lowest;
    const std::string unmet = absl::StrCat(
        "the target cannot be met: the heuristic's own decisions alone take it past; "
        "the model's prompts all go ",
        all_local ? "local" : "to the cloud");
    std::fprintf(stderr, "note: %s\n", unmet.c_str());
    absl::StrAppend(&note, "; ", unmet);
  }
  v1::ComplexityModelWeights w = (*model)->weights();
  w.set_threshold(threshold);
  w.set_threshold_note(note);
  std::string out = absl::GetFlag(FLAGS_out).empty() ? absl::GetFlag(FLAGS_model)
                                                      : absl::GetFlag(FLAGS_out);
  if (auto s = hr::router::SaveComplexityWeights(w, out); !s.ok()) return Die(s);
  std::printf("threshold %.4f (%s) written to %s\n", threshold, note.c_str(), out.c_str());
  return 0;
}

// Byte offset of the `chars`-th code point of `s`.
size_t ByteOffset(absl::string_view s, int chars) {
  size_t i = 0;
  for (int c = 0; c < chars && i < s.size(); ++c) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return i;
}

int Detectors() {
  absl::StatusOr<std::string> data = hr::util::ReadFile(absl::GetFlag(FLAGS_data));
  if (!data.ok()) return Die(data.status());
  tools::PiiSamples samples;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(absl::StrCat("{\"samples\":", *data, "}"),
                                                        &samples, opts);
  if (!st.ok()) return Die(absl::InvalidArgumentError(st.ToString()));
  const std::map<std::string, v1::SensitiveCategory> kTypes = {
      {"CREDIT_CARD", v1::PAYMENT_CARD}, {"PHONE_NUMBER", v1::PHONE},
      {"EMAIL_ADDRESS", v1::EMAIL},      {"US_SSN", v1::US_SSN},
      {"IBAN_CODE", v1::IBAN},           {"IP_ADDRESS", v1::IP_ADDRESS}};
  struct Counts {
    int gold = 0, found_gold = 0, predicted = 0, correct_predicted = 0;
  };
  std::map<std::string, Counts> counts;
  hr::router::Detectors detectors;
  for (const auto& sample : samples.samples()) {
    const std::string& text = sample.full_text();
    auto spans = detectors.FindSpans(text);
    for (const auto& [name, category] : kTypes) {
      Counts& c = counts[name];
      std::vector<std::pair<size_t, size_t>> gold;
      for (const auto& g : sample.spans()) {
        if (g.entity_type() != name) continue;
        gold.emplace_back(ByteOffset(text, g.start_position()), ByteOffset(text, g.end_position()));
      }
      c.gold += gold.size();
      const bool show = absl::GetFlag(FLAGS_show_errors) == name;
      auto overlaps = [](size_t a0, size_t a1, size_t b0, size_t b1) { return a0 < b1 && b0 < a1; };
      for (const auto& [g0, g1] : gold) {
        bool found = false;
        for (const auto& s : spans) {
          if (s.category == category && overlaps(g0, g1, s.start, s.end)) {
            found = true;
            break;
          }
        }
        c.found_gold += found;
        if (show && !found) std::printf("miss:  %s\n", text.substr(g0, g1 - g0).c_str());
      }
      for (const auto& s : spans) {
        if (s.category != category) continue;
        ++c.predicted;
        bool right = false;
        for (const auto& [g0, g1] : gold) right = right || overlaps(g0, g1, s.start, s.end);
        c.correct_predicted += right;
        if (show && !right) {
          std::printf("false: %s  <- %s\n", text.substr(s.start, s.end - s.start).c_str(),
                      text.c_str());
        }
      }
    }
  }
  bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("%zu samples; a detected span counts when it overlaps a labelled span of its "
                "type\n%-14s %6s %9s %9s %7s\n",
                samples.samples_size(), "entity", "gold", "predicted", "precision", "recall");
  }
  std::vector<std::string> rows;
  for (const auto& [name, c] : counts) {
    double p = c.predicted == 0 ? 1.0 : static_cast<double>(c.correct_predicted) / c.predicted;
    double r = c.gold == 0 ? 1.0 : static_cast<double>(c.found_gold) / c.gold;
    if (json) {
      rows.push_back(absl::StrFormat(
          "{\"entity\":\"%s\",\"gold\":%d,\"predicted\":%d,\"precision\":%.4f,\"recall\":%.4f}",
          name, c.gold, c.predicted, p, r));
    } else {
      std::printf("%-14s %6d %9d %9.3f %7.3f\n", name.c_str(), c.gold, c.predicted, p, r);
    }
  }
  if (json) std::printf("[%s]\n", absl::StrJoin(rows, ",").c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = hr::util::ParseCommandLine(argc, argv, kUsage);
  std::string cmd = args.size() > 1 ? args[1] : "";
  if (absl::GetFlag(FLAGS_data).empty() && !cmd.empty()) {
    std::fprintf(stderr, "error: --data is required\n");
    return 2;
  }
  if (cmd == "train") return Train();
  if (cmd == "eval") return Eval();
  if (cmd == "calibrate") return Calibrate();
  if (cmd == "cv") return CrossValidate();
  if (cmd == "detectors") return Detectors();
  std::fprintf(stderr, "hr-train: %s", kUsage);
  return 2;
}
