#include "scheduler/scheduler.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"

namespace tessera {

using TimePoint = std::chrono::steady_clock::time_point;

const char* submit_status_name(SubmitStatus s) {
  switch (s) {
    case SubmitStatus::kAccepted:
      return "accepted";
    case SubmitStatus::kQueueFull:
      return "queue_full";
    case SubmitStatus::kTooLong:
      return "too_long";
    case SubmitStatus::kInvalid:
      return "invalid";
  }
  return "unknown";
}

const char* fail_reason_name(FailReason r) {
  switch (r) {
    case FailReason::kCannotFit:
      return "cannot_fit";
    case FailReason::kDeadline:
      return "deadline";
  }
  return "unknown";
}

struct Scheduler::Sequence {
  SeqId id = 0;
  std::vector<int32_t> tokens;  // known: prompt + generated
  int num_prompt = 0;
  int max_new_tokens = 0;
  int priority = 0;
  std::optional<TimePoint> deadline;
  TimePoint arrival{};
  SeqState state = SeqState::kWaiting;
  int num_computed = 0;
  bool ever_started = false;
  int num_cached_prompt = 0;
  int num_preemptions = 0;
  int reserved = 1;   // slots against max_num_seqs: itself plus forks still to come
  int draft_len = 0;  // speculative slots wanted at the next schedule()
  SequenceKv kv;      // detached while waiting

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  bool started() const { return kv.attached(); }
  // A decode is one known-but-uncomputed token on a sequence that already has KV.
  bool is_decode() const { return started() && num_tokens() - num_computed == 1; }
};

namespace {

// Effective priority: the integer priority plus one per aging interval waited.
int64_t effective_priority(int priority, TimePoint arrival, TimePoint now,
                           std::chrono::milliseconds aging) {
  if (aging.count() <= 0 || now <= arrival) return priority;
  return priority + (now - arrival) / aging;
}

}  // namespace

// ---- construction, queries ----

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_((config.validate(), config)), kv_(config.kv), policy_(make_policy(config)) {}

Scheduler::~Scheduler() {
  // Sequences (and their RAII block tables) go before the pool they point into.
  sequences_.clear();
}

std::optional<SequenceInfo> Scheduler::info(SeqId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return std::nullopt;
  const Sequence& s = *it->second;
  SequenceInfo i;
  i.id = s.id;
  i.state = s.state;
  i.priority = s.priority;
  i.num_prompt_tokens = s.num_prompt;
  i.num_tokens = s.num_tokens();
  i.num_computed = s.num_computed;
  i.num_cached_prompt_tokens = s.num_cached_prompt;
  i.num_preemptions = s.num_preemptions;
  i.num_blocks = s.kv.num_blocks();
  i.reserved_seqs = s.reserved;
  return i;
}

const std::vector<int32_t>* Scheduler::tokens(SeqId id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end() ? nullptr : &it->second->tokens;
}

std::vector<SeqId> Scheduler::waiting_ids() const {
  return waiting_;
}
std::vector<SeqId> Scheduler::running_ids() const {
  return running_;
}

int Scheduler::num_running_slots() const {
  int n = 0;
  for (SeqId id : running_) n += sequences_.at(id)->reserved;
  return n;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_waiting = num_waiting();
  s.num_running = num_running();
  s.num_running_slots = num_running_slots();
  s.num_preemptions = num_preemptions_;
  s.num_steps = static_cast<int64_t>(next_step_ - 1);
  s.num_rejected = num_rejected_;
  s.kv = kv_.stats();
  return s;
}

// ---- submit / abort / finish / fork ----

SubmitResult Scheduler::submit(SequenceSpec spec) {
  auto reject = [this](SubmitStatus status, std::string message) {
    ++num_rejected_;
    return SubmitResult{status, std::move(message)};
  };
  const int64_t prompt_len = static_cast<int64_t>(spec.prompt.size());
  if (prompt_len == 0) return reject(SubmitStatus::kInvalid, "prompt is empty");
  if (spec.max_new_tokens < 0) {
    return reject(SubmitStatus::kInvalid,
                  "max_new_tokens must be >= 0, got " + std::to_string(spec.max_new_tokens));
  }
  if (sequences_.count(spec.id)) {
    return reject(SubmitStatus::kInvalid, "sequence id " + std::to_string(spec.id) + " is in use");
  }
  if (spec.num_seqs < 1) {
    return reject(SubmitStatus::kInvalid,
                  "num_seqs must be >= 1, got " + std::to_string(spec.num_seqs));
  }
  if (config_.max_model_len > 0 && prompt_len + 1 > config_.max_model_len) {
    return reject(SubmitStatus::kTooLong,
                  "prompt has " + std::to_string(prompt_len) + " tokens; max_model_len " +
                      std::to_string(config_.max_model_len) + " leaves no room to generate");
  }
  // KV needed at most: every token but the last generated one is computed.
  int64_t total = prompt_len + std::max(0, spec.max_new_tokens - 1);
  if (config_.max_model_len > 0) total = std::min<int64_t>(total, config_.max_model_len);
  if (kv_.blocks_for_tokens(total) > kv_.num_total_blocks()) {
    return reject(SubmitStatus::kTooLong,
                  "prompt " + std::to_string(prompt_len) + " + max_new_tokens " +
                      std::to_string(spec.max_new_tokens) + " needs " +
                      std::to_string(kv_.blocks_for_tokens(total)) + " KV blocks of " +
                      std::to_string(kv_.block_size()) + " tokens; the cache holds " +
                      std::to_string(kv_.num_total_blocks()));
  }
  if (num_waiting() >= config_.max_waiting) {
    return reject(SubmitStatus::kQueueFull, "waiting queue is full (" +
                                                std::to_string(config_.max_waiting) +
                                                " requests); retry later");
  }
  auto seq = std::make_unique<Sequence>();
  seq->id = spec.id;
  seq->tokens = std::move(spec.prompt);
  seq->num_prompt = static_cast<int>(prompt_len);
  seq->max_new_tokens = spec.max_new_tokens;
  seq->priority = spec.priority;
  seq->deadline = spec.deadline;
  seq->arrival = spec.arrival;
  seq->reserved = std::min(spec.num_seqs, config_.max_num_seqs);
  waiting_.push_back(spec.id);
  sequences_.emplace(spec.id, std::move(seq));
  return {};
}

namespace {
void erase_id(std::vector<SeqId>& ids, SeqId id) {
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
}
}  // namespace

bool Scheduler::abort(SeqId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return false;
  erase_id(it->second->state == SeqState::kRunning ? running_ : waiting_, id);
  sequences_.erase(it);  // the RAII block table returns its blocks here
  released_.push_back(id);
  return true;
}

bool Scheduler::finish(SeqId id) {
  return abort(id);
}

bool Scheduler::fork(SeqId parent_id, SeqId child_id, int32_t first_token) {
  auto it = sequences_.find(parent_id);
  if (it == sequences_.end() || it->second->state != SeqState::kRunning || !it->second->started() ||
      it->second->num_computed != it->second->num_tokens() - 1) {
    throw Error(ErrorKind::kInvalidArgument, "fork: sequence " + std::to_string(parent_id) +
                                                 " is not running with a freshly sampled token");
  }
  if (sequences_.count(child_id)) {
    throw Error(ErrorKind::kInvalidArgument,
                "fork: sequence id " + std::to_string(child_id) + " is in use");
  }
  Sequence& parent = *it->second;
  const bool runs = parent.reserved > 1 || num_running_slots() < config_.max_num_seqs;
  if (parent.reserved > 1) --parent.reserved;
  auto child = std::make_unique<Sequence>();
  child->id = child_id;
  child->tokens.assign(parent.tokens.begin(), parent.tokens.begin() + parent.num_computed);
  child->tokens.push_back(first_token);
  child->num_prompt = parent.num_prompt;
  child->max_new_tokens = parent.max_new_tokens;
  child->priority = parent.priority;
  child->deadline = parent.deadline;
  child->arrival = parent.arrival;
  child->ever_started = true;
  child->num_cached_prompt = parent.num_cached_prompt;
  if (!runs) {
    // Like a preempted sequence: no blocks, recomputes its known tokens when admitted.
    waiting_.push_back(child_id);
    sequences_.emplace(child_id, std::move(child));
    return false;
  }
  child->state = SeqState::kRunning;
  child->num_computed = parent.num_computed;
  child->kv = kv_.fork(parent.kv, parent.num_computed);
  running_.push_back(child_id);
  sequences_.emplace(child_id, std::move(child));
  return true;
}

void Scheduler::set_draft_len(SeqId id, int draft_len) {
  auto it = sequences_.find(id);
  if (it != sequences_.end()) it->second->draft_len = std::max(0, draft_len);
}

// ---- one scheduling pass ----

// State of one schedule() call. Entries are planned in service order and may be rolled back
// when a later, higher-ranked sequence preempts their owner.
class Scheduler::Pass {
 public:
  Pass(Scheduler& s, TimePoint now) : s_(s), now_(now), budget_(s.config_.max_num_batched_tokens) {}

  void expire_deadlines();
  void sort_waiting();
  void launch_batch();  // run-to-completion policies: waiting -> running as one batch
  void schedule_running();
  void admit_waiting();
  void finalize(StepPlan& plan);

 private:
  struct Entry {
    ScheduledSeq seq;
    std::vector<BlockCopy> copies;
    bool alive = true;
  };
  enum class Outcome { kScheduled, kSkipped, kNoBlocks };

  Sequence& get(SeqId id) { return *s_.sequences_.at(id); }
  bool ranks_before(const Sequence& a, const Sequence& b) const;
  bool waits_before(const Sequence& a, const Sequence& b) const;
  int chunk_for(int remaining) const;
  Outcome try_schedule(Sequence& seq, bool joining);
  int draft_for(const Sequence& seq) const;
  void add_entry(Sequence& seq, int start, int end, bool is_prefill, std::vector<BlockCopy> copies,
                 int num_draft = 0);
  std::optional<SeqId> pick_victim(const Sequence& self) const;
  void preempt(Sequence& victim);
  void fail(Sequence& seq, FailReason reason, std::string message);
  QueueView view() const;

  Scheduler& s_;
  TimePoint now_;
  int budget_;
  std::vector<Entry> entries_;
  std::unordered_map<SeqId, size_t> entry_of_;
  std::vector<SeqId> ranked_;  // running sequences, best first, fixed for the pass
  std::vector<FailedSeq> failed_;
  std::vector<SeqId> preempted_;
  bool prefill_scheduled_ = false;  // any prefill chunk in this step (even if rolled back)
};

bool Scheduler::Pass::ranks_before(const Sequence& a, const Sequence& b) const {
  const auto aging = s_.config_.priority_aging_interval;
  const int64_t pa = effective_priority(a.priority, a.arrival, now_, aging);
  const int64_t pb = effective_priority(b.priority, b.arrival, now_, aging);
  if (pa != pb) return pa > pb;
  if (a.arrival != b.arrival) return a.arrival < b.arrival;
  return a.id < b.id;
}

bool Scheduler::Pass::waits_before(const Sequence& a, const Sequence& b) const {
  const auto aging = s_.config_.priority_aging_interval;
  const int64_t pa = effective_priority(a.priority, a.arrival, now_, aging);
  const int64_t pb = effective_priority(b.priority, b.arrival, now_, aging);
  if (pa != pb) return pa > pb;
  // Earliest deadline first within a priority; no deadline sorts after any deadline.
  if (a.deadline.has_value() != b.deadline.has_value()) return a.deadline.has_value();
  if (a.deadline && *a.deadline != *b.deadline) return *a.deadline < *b.deadline;
  if (a.arrival != b.arrival) return a.arrival < b.arrival;
  return a.id < b.id;
}

QueueView Scheduler::Pass::view() const {
  QueueView v;
  v.num_running = s_.num_running_slots();
  v.flush_requested = s_.flush_requested_;
  bool first = true;
  for (SeqId id : s_.waiting_) {
    v.num_waiting += s_.sequences_.at(id)->reserved;
    TimePoint a = s_.sequences_.at(id)->arrival;
    if (first || a < v.oldest_arrival) v.oldest_arrival = a;
    first = false;
  }
  return v;
}

void Scheduler::Pass::fail(Sequence& seq, FailReason reason, std::string message) {
  const SeqId id = seq.id;
  failed_.push_back({id, reason, std::move(message)});
  auto it = entry_of_.find(id);
  if (it != entry_of_.end() && entries_[it->second].alive) {
    entries_[it->second].alive = false;
    budget_ = std::min(s_.config_.max_num_batched_tokens,
                       budget_ + entries_[it->second].seq.num_tokens());
  }
  erase_id(seq.state == SeqState::kRunning ? s_.running_ : s_.waiting_, id);
  s_.sequences_.erase(id);  // frees its blocks
}

void Scheduler::Pass::expire_deadlines() {
  std::vector<SeqId> expired;
  for (const auto& [id, seq] : s_.sequences_) {
    if (seq->deadline && *seq->deadline <= now_) expired.push_back(id);
  }
  std::sort(expired.begin(), expired.end());
  for (SeqId id : expired) {
    Sequence& seq = get(id);
    const bool running = seq.state == SeqState::kRunning;
    fail(seq, FailReason::kDeadline,
         std::string("deadline passed while ") + (running ? "running" : "waiting") + " after " +
             std::to_string(seq.num_tokens() - seq.num_prompt) + " generated tokens");
  }
}

void Scheduler::Pass::sort_waiting() {
  std::stable_sort(s_.waiting_.begin(), s_.waiting_.end(),
                   [this](SeqId a, SeqId b) { return waits_before(get(a), get(b)); });
}

void Scheduler::Pass::launch_batch() {
  if (s_.waiting_.empty()) s_.flush_requested_ = false;  // flush() applies to what waits now
  if (s_.policy_->joins_every_step()) return;
  // The limit is in slots (a sequence with n > 1 reserves its forks); the head of the queue
  // always launches so a request wider than a static batch cannot wait forever.
  int slots = s_.policy_->admit_limit(view(), now_);
  if (slots <= 0) return;
  size_t n = 0;
  while (n < s_.waiting_.size()) {
    Sequence& seq = get(s_.waiting_[n]);
    if (n > 0 && seq.reserved > slots) break;
    slots -= seq.reserved;
    seq.state = SeqState::kRunning;
    s_.running_.push_back(seq.id);
    ++n;
    if (slots <= 0) break;
  }
  s_.waiting_.erase(s_.waiting_.begin(), s_.waiting_.begin() + static_cast<std::ptrdiff_t>(n));
  s_.flush_requested_ = false;
}

int Scheduler::Pass::chunk_for(int remaining) const {
  if (budget_ <= 0) return 0;
  if (remaining <= budget_) return remaining;
  if (s_.config_.enable_chunked_prefill) return budget_;
  // Without chunking a prefill runs whole. One longer than the whole budget could never run,
  // so it may overshoot the budget as the step's only prefill (next to the decodes).
  if (remaining > s_.config_.max_num_batched_tokens && !prefill_scheduled_) return remaining;
  return 0;
}

// Draft slots a decode of `seq` may take now: what the engine asked for, within the token
// budget (the known token comes first) and within the sequence's remaining length.
int Scheduler::Pass::draft_for(const Sequence& seq) const {
  int draft = std::min(seq.draft_len, budget_ - 1);
  // Accepting all k drafts adds k + 1 tokens: keep within max_new_tokens and max_model_len.
  draft = std::min(draft, seq.num_prompt + seq.max_new_tokens - seq.num_tokens() - 1);
  if (s_.config_.max_model_len > 0)
    draft = std::min(draft, s_.config_.max_model_len - seq.num_tokens() - 1);
  return std::max(0, draft);
}

void Scheduler::Pass::add_entry(Sequence& seq, int start, int end, bool is_prefill,
                                std::vector<BlockCopy> copies, int num_draft) {
  Entry e;
  e.seq.id = seq.id;
  e.seq.start = start;
  e.seq.end = end;
  e.seq.sample = end - num_draft == seq.num_tokens();
  e.seq.is_prefill = is_prefill;
  e.seq.num_draft = num_draft;
  e.seq.tokens.assign(seq.tokens.begin() + start, seq.tokens.begin() + (end - num_draft));
  e.seq.tokens.resize(static_cast<size_t>(end - start), 0);  // draft placeholders
  e.seq.block_table = seq.kv.blocks();
  e.copies = std::move(copies);
  budget_ = std::max(0, budget_ - (end - start));
  prefill_scheduled_ = prefill_scheduled_ || is_prefill;
  entry_of_[seq.id] = entries_.size();
  entries_.push_back(std::move(e));
}

// Plans `seq` for this step, allocating its blocks. `joining`: it is being admitted from
// the waiting queue (continuous batching) and must leave the admission watermark free.
Scheduler::Pass::Outcome Scheduler::Pass::try_schedule(Sequence& seq, bool joining) {
  KvCacheManager& kv = s_.kv_;
  if (!seq.started()) {
    // First start or resume after preemption: reuse the longest cached prefix, always
    // leaving at least one token to compute so the step yields logits.
    PrefixMatch match = kv.match_prefix(seq.tokens, seq.num_tokens() - 1);
    const int start = match.num_tokens;
    const int chunk = chunk_for(seq.num_tokens() - start);
    if (chunk == 0) return Outcome::kSkipped;
    SequenceKv table = kv.create();
    const int keep_free =
        joining && !s_.running_.empty()
            ? static_cast<int>(kv.num_total_blocks() * s_.config_.kv_admission_watermark)
            : 0;
    if (!kv.allocate_with_prefix(table, match, start + chunk, keep_free)) {
      return Outcome::kNoBlocks;
    }
    seq.kv = std::move(table);
    seq.num_computed = start;
    kv.record_prefix_query(seq.num_tokens(), start);
    if (!seq.ever_started) seq.num_cached_prompt = std::min(start, seq.num_prompt);
    seq.ever_started = true;
    add_entry(seq, start, start + chunk, true, {});
    return Outcome::kScheduled;
  }
  const bool decode = seq.is_decode();
  const int start = seq.num_computed;
  const int chunk = chunk_for(seq.num_tokens() - start);
  if (chunk == 0) return Outcome::kSkipped;
  std::vector<BlockCopy> copies;
  // A draft is optional: without blocks for it, the plain decode goes ahead.
  if (const int draft = decode ? draft_for(seq) : 0; draft > 0) {
    if (kv.allocate_slots(seq.kv, start, start + chunk + draft, copies)) {
      add_entry(seq, start, start + chunk + draft, false, std::move(copies), draft);
      return Outcome::kScheduled;
    }
    copies.clear();
  }
  if (!kv.allocate_slots(seq.kv, start, start + chunk, copies)) return Outcome::kNoBlocks;
  add_entry(seq, start, start + chunk, !decode, std::move(copies));
  return Outcome::kScheduled;
}

// The lowest-ranked running sequence below `self` that holds blocks, if any.
std::optional<SeqId> Scheduler::Pass::pick_victim(const Sequence& self) const {
  for (auto it = ranked_.rbegin(); it != ranked_.rend(); ++it) {
    if (*it == self.id) return std::nullopt;
    auto found = s_.sequences_.find(*it);
    if (found == s_.sequences_.end()) continue;
    const Sequence& cand = *found->second;
    if (cand.state == SeqState::kRunning && cand.kv.num_blocks() > 0) return cand.id;
  }
  return std::nullopt;
}

void Scheduler::Pass::preempt(Sequence& victim) {
  auto it = entry_of_.find(victim.id);
  if (it != entry_of_.end() && entries_[it->second].alive) {
    entries_[it->second].alive = false;  // its copies die with it
    budget_ = std::min(s_.config_.max_num_batched_tokens,
                       budget_ + entries_[it->second].seq.num_tokens());
  }
  const bool held_kv = victim.started();
  victim.kv = SequenceKv();  // frees the blocks; full computed ones stay in the prefix cache
  victim.num_computed = 0;   // recompute prompt + generated tokens on resume
  victim.state = SeqState::kWaiting;
  erase_id(s_.running_, victim.id);
  s_.waiting_.push_back(victim.id);
  if (!held_kv) return;  // a batch member that never started just waits for the next batch
  ++victim.num_preemptions;
  ++s_.num_preemptions_;
  preempted_.push_back(victim.id);
}

void Scheduler::Pass::schedule_running() {
  ranked_ = s_.running_;
  std::stable_sort(ranked_.begin(), ranked_.end(),
                   [this](SeqId a, SeqId b) { return ranks_before(get(a), get(b)); });
  // Decodes first (one token each, keeps inter-token latency flat), then prefill chunks;
  // each pass in rank order so a higher-ranked sequence may preempt a lower one.
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<SeqId> order = ranked_;
    for (SeqId id : order) {
      auto found = s_.sequences_.find(id);
      if (found == s_.sequences_.end()) continue;
      Sequence& seq = *found->second;
      if (seq.state != SeqState::kRunning || entry_of_.count(id)) continue;
      if (seq.is_decode() != (pass == 0)) continue;
      for (;;) {
        const Outcome outcome = try_schedule(seq, false);
        if (outcome != Outcome::kNoBlocks) break;
        if (const std::optional<SeqId> victim = pick_victim(seq)) {
          preempt(get(*victim));
          continue;
        }
        const int64_t need = s_.kv_.blocks_for_tokens(seq.num_tokens());
        if (need > s_.kv_.num_total_blocks()) {
          fail(seq, FailReason::kCannotFit,
               std::to_string(seq.num_tokens()) + " tokens need " + std::to_string(need) +
                   " KV blocks; the cache holds " + std::to_string(s_.kv_.num_total_blocks()));
        } else {
          preempt(seq);  // only higher-ranked sequences hold blocks: yield to them
        }
        break;
      }
    }
  }
}

void Scheduler::Pass::admit_waiting() {
  if (!s_.policy_->joins_every_step() || !preempted_.empty()) return;
  int limit = s_.policy_->admit_limit(view(), now_);
  size_t i = 0;
  while (limit > 0 && budget_ > 0 && i < s_.waiting_.size()) {
    Sequence& seq = get(s_.waiting_[i]);
    if (seq.reserved > limit) break;  // its forks would not fit; keep the queue order
    const Outcome outcome = try_schedule(seq, true);
    if (outcome == Outcome::kSkipped) break;  // budget: keep the queue order
    if (outcome == Outcome::kNoBlocks) {
      const int64_t need = s_.kv_.blocks_for_tokens(seq.num_tokens());
      if (need > s_.kv_.num_total_blocks()) {
        fail(seq, FailReason::kCannotFit,
             std::to_string(seq.num_tokens()) + " tokens need " + std::to_string(need) +
                 " KV blocks; the cache holds " + std::to_string(s_.kv_.num_total_blocks()));
        continue;  // fail() removed it from waiting_; i now points at the next one
      }
      break;  // head-of-line: later, smaller requests must not overtake it forever
    }
    seq.state = SeqState::kRunning;
    s_.running_.push_back(seq.id);
    s_.waiting_.erase(s_.waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    limit -= seq.reserved;
  }
}

void Scheduler::Pass::finalize(StepPlan& plan) {
  for (Entry& e : entries_) {
    if (!e.alive) continue;
    plan.copies.insert(plan.copies.end(), e.copies.begin(), e.copies.end());
    plan.num_tokens += e.seq.num_tokens();
    (e.seq.is_prefill ? plan.num_prefill_tokens : plan.num_decode_tokens) += e.seq.num_tokens();
    plan.seqs.push_back(std::move(e.seq));
  }
  std::stable_partition(plan.seqs.begin(), plan.seqs.end(),
                        [](const ScheduledSeq& s) { return !s.is_prefill; });
  plan.preempted = std::move(preempted_);
  plan.failed.insert(plan.failed.end(), failed_.begin(), failed_.end());
  if (plan.seqs.empty() && !s_.waiting_.empty()) plan.retry_at = s_.policy_->next_timer(view());
}

StepPlan Scheduler::schedule(TimePoint now) {
  StepPlan plan;
  plan.step = next_step_++;
  plan.released = std::move(released_);
  released_.clear();
  Pass pass(*this, now);
  pass.expire_deadlines();
  pass.sort_waiting();
  pass.launch_batch();
  pass.schedule_running();
  pass.admit_waiting();
  pass.sort_waiting();  // preempted sequences rejoin in service order
  pass.finalize(plan);
  kv_.release_copy_sources();
  for (auto& [id, seq] : sequences_) seq->draft_len = 0;
  return plan;
}

// ---- update ----

void Scheduler::update(const StepPlan& plan, std::span<const SampledToken> sampled) {
  std::unordered_map<SeqId, std::vector<int32_t>> tokens_of;
  for (const SampledToken& t : sampled) tokens_of[t.id].push_back(t.token);
  for (const ScheduledSeq& e : plan.seqs) {
    auto it = sequences_.find(e.id);
    if (it == sequences_.end()) continue;  // finished or aborted since schedule()
    Sequence& seq = *it->second;
    // Preempted (or otherwise re-planned) since this plan: its KV is gone, skip.
    if (seq.state != SeqState::kRunning || seq.num_computed != e.start || !seq.started()) continue;
    seq.num_computed = e.end - e.num_draft;
    if (e.sample) {
      auto tok = tokens_of.find(e.id);
      const size_t n = tok == tokens_of.end() ? 0 : tok->second.size();
      if (n == 0 || n > static_cast<size_t>(e.num_draft) + 1) {
        throw Error(ErrorKind::kInternal,
                    "update: " + std::to_string(n) + " sampled tokens for sequence " +
                        std::to_string(e.id) + " with a draft of " + std::to_string(e.num_draft));
      }
      // Accepted drafts were computed in this step; the last token is new.
      seq.num_computed += static_cast<int>(n) - 1;
      seq.tokens.insert(seq.tokens.end(), tok->second.begin(), tok->second.end());
      if (e.num_draft > 0) kv_.truncate(seq.kv, seq.num_computed);
    }
    kv_.cache_computed_blocks(seq.kv, seq.tokens, seq.num_computed);
  }
}

void Scheduler::resolve_pending(SeqId id, int32_t token) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  std::vector<int32_t>& tokens = it->second->tokens;
  if (tokens.empty() || tokens.back() != kPendingToken)
    throw Error(ErrorKind::kInternal,
                "resolve_pending: sequence " + std::to_string(id) + " has no pending token");
  tokens.back() = token;
}

// ---- invariants ----

void Scheduler::check_invariants() const {
  auto fail = [](const std::string& what) {
    throw Error(ErrorKind::kInternal, "Scheduler invariant: " + what);
  };
  kv_.check_invariants();
  std::unordered_set<SeqId> seen;
  auto check_queue = [&](const std::vector<SeqId>& ids, SeqState state, const char* name) {
    for (SeqId id : ids) {
      if (!seen.insert(id).second) fail("sequence " + std::to_string(id) + " queued twice");
      auto it = sequences_.find(id);
      if (it == sequences_.end())
        fail(std::string(name) + " holds unknown id " + std::to_string(id));
      const Sequence& s = *it->second;
      if (s.state != state) fail("sequence " + std::to_string(id) + " in the wrong queue");
      if (s.num_computed < 0 || s.num_computed > s.num_tokens()) {
        fail("sequence " + std::to_string(id) + " computed count out of range");
      }
      if (state == SeqState::kWaiting && (s.started() || s.num_computed != 0)) {
        fail("waiting sequence " + std::to_string(id) + " holds KV");
      }
      if (s.started() && s.kv.num_blocks() < kv_.blocks_for_tokens(s.num_computed)) {
        fail("sequence " + std::to_string(id) + " has fewer blocks than computed tokens");
      }
    }
  };
  check_queue(waiting_, SeqState::kWaiting, "waiting");
  check_queue(running_, SeqState::kRunning, "running");
  if (num_running_slots() > config_.max_num_seqs) {
    fail(std::to_string(num_running_slots()) + " running slots exceed max_num_seqs " +
         std::to_string(config_.max_num_seqs));
  }
  if (seen.size() != sequences_.size()) fail("a sequence is in no queue");
}

}  // namespace tessera
