#include "engine/engine_impl.h"

#include <cstdlib>
#include <random>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "engine/request_validation.h"
#include "engine/sampler.h"

namespace tessera {
namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// A request's final status over its choices: the most severe one wins, so a request with an
// errored choice counts as an error.
int severity(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return 0;
    case FinishReason::kLength:
      return 1;
    case FinishReason::kCancelled:
      return 2;
    case FinishReason::kDeadline:
      return 3;
    case FinishReason::kError:
      return 4;
  }
  return 4;
}

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

uint64_t random_seed_base() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

EngineHealth engine_health(const EngineStats& s, Clock::time_point started, int stall_timeout_ms) {
  // Idle loops tick too (last_step_end moves without steps); before the very first tick,
  // measure from server start: a loop that never ticks is stalled as well.
  const auto last = s.last_step_end.time_since_epoch().count() != 0 ? s.last_step_end : started;
  EngineHealth h;
  h.last_step_age_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last).count();
  if (h.last_step_age_ms > stall_timeout_ms) {
    h.ok = false;
    h.status = "stalled";
  } else if (s.consecutive_failed_steps >= kUnhealthyFailedSteps) {
    h.ok = false;
    h.status = "failing";
  } else {
    h.status = "ok";
  }
  return h;
}

void EngineImpl::Signal::poke() {
  {
    std::lock_guard lock(mu);
    poked = true;
  }
  cv.notify_all();
}

EngineImpl::EngineImpl(EngineParts parts)
    : parts_(std::move(parts)),
      scheduler_(parts_.scheduler),
      metrics_(parts_.registry ? *parts_.registry : metrics::default_registry()),
      seed_base_(random_seed_base()),
      spec_(parts_.spec),
      debug_stall_step_ms_(env_int("TESSERA_DEBUG_STALL_STEP_MS")),
      signal_(std::make_shared<Signal>()) {
  if (!parts_.tokenizer) throw Error(ErrorKind::kInternal, "engine: no tokenizer");
  executor_ = parts_.make_executor(*this);
  publish_stats(Clock::now());
  thread_ = std::thread([this] { loop(); });
}

EngineImpl::~EngineImpl() {
  stop();
  executor_.reset();  // before parts_.resources (the model it runs)
}

void EngineImpl::stop() {
  stop_requested_.store(true, std::memory_order_release);
  signal_->poke();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::shared_ptr<ResultStream> EngineImpl::submit(GenerationRequest request) {
  validate_request(request, {parts_.model_config.vocab_size, parts_.max_model_len,
                             parts_.scheduler.max_num_seqs});
  if (request.id.empty()) request.id = "req-" + std::to_string(++id_counter_);

  auto state = std::make_unique<RequestState>();
  const SamplingParams& sp = request.sampling;
  const uint64_t seed = sp.seed ? *sp.seed : seed_base_ + 0x9E3779B97F4A7C15ull * ++seed_counter_;
  for (int i = 0; i < sp.n; ++i)
    state->choices.push_back(
        std::make_unique<ChoiceState>(i, *parts_.tokenizer, sp, seed + static_cast<uint64_t>(i)));
  state->rules = StopRules::make(sp, *parts_.tokenizer, parts_.model_config.eos_token_id,
                                 parts_.max_model_len);
  state->request = std::move(request);
  if (state->request.sampling.use_beam_search) start_beams(*state);
  std::shared_ptr<Signal> signal = signal_;
  state->stream = std::make_shared<StreamState>(sp.n, [signal] { signal->poke(); });
  auto handle = std::make_shared<StreamHandle>(state->stream);
  {
    std::lock_guard lock(signal_->mu);
    // Checked under the inbox lock: shutdown drains the inbox under it after setting the flag.
    if (stop_requested_.load(std::memory_order_acquire))
      throw Error(ErrorKind::kInternal, "engine is stopped");
    const int queued = num_waiting_.load() + static_cast<int>(signal_->inbox.size());
    if (queued >= parts_.scheduler.max_waiting)
      throw Error(ErrorKind::kResourceExhausted,
                  "waiting queue is full (" + std::to_string(queued) + " requests); retry later");
    signal_->inbox.push_back(std::move(state));
    signal_->poked = true;
  }
  signal_->cv.notify_all();
  return handle;
}

EngineStats EngineImpl::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

SeqSampling EngineImpl::sampling_for(SeqId id) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) {
    // Ended after its step was planned (pipelined steps finish the previous step's requests
    // late): its row is computed greedily and its token dropped.
    static const SamplingParams kDropped = [] {
      SamplingParams p;
      p.temperature = 0.0f;
      return p;
    }();
    return {&kDropped, {}, {}, 0};
  }
  const RequestState& req = *it->second.first;
  const ChoiceState& c = *req.choices[static_cast<size_t>(it->second.second)];
  const std::vector<int32_t>* known = scheduler_.tokens(id);
  const int pending = known && !known->empty() && known->back() == kPendingToken ? 1 : 0;
  const bool forks = it->second.second == 0 && req.num_choices() > 1 && !req.forked;
  return {&req.request.sampling, req.request.prompt, c.output, c.seed, pending, forks};
}

void EngineImpl::loop() {
  while (!stop_requested_.load(std::memory_order_acquire)) {
    std::optional<Clock::time_point> wait_until;
    try {
      admit_inbox();
      sweep_requests(Clock::now());
      if (scheduler_.has_work() || inflight_) {
        wait_until = step();
      } else {
        wait_until = Clock::now() + kIdleTick;
      }
    } catch (const std::exception& e) {
      // Outside the executor (scheduler or bookkeeping): which requests are involved is
      // unknown, so every live one fails; the loop itself keeps serving new ones.
      spdlog::error("engine loop error: {}; failing {} live requests", e.what(), requests_.size());
      note_step_failed(e.what());
      fail_all(std::string("internal error: ") + e.what());
      wait_until = Clock::now() + std::chrono::milliseconds(10);
    }
    std::erase_if(requests_, [](const auto& kv) {
      return kv.second->num_finished == kv.second->num_choices();
    });
    publish_stats(Clock::now());
    ready_.store(true, std::memory_order_release);
    if (wait_until) wait_for_work(*wait_until);
  }
  if (inflight_) {
    try {
      complete_inflight();
    } catch (const std::exception& e) {
      spdlog::error("engine: the last step failed at shutdown: {}", e.what());
    }
  }
  shutdown_requests();
}

void EngineImpl::wait_for_work(Clock::time_point until) {
  std::unique_lock lock(signal_->mu);
  signal_->cv.wait_until(lock, std::min(until, Clock::now() + kIdleTick), [&] {
    return signal_->poked || stop_requested_.load(std::memory_order_acquire);
  });
  signal_->poked = false;
}

void EngineImpl::admit_inbox() {
  std::deque<std::unique_ptr<RequestState>> batch;
  {
    std::lock_guard lock(signal_->mu);
    batch.swap(signal_->inbox);
    signal_->poked = false;
  }
  for (auto& owned : batch) {
    RequestState& req = *owned;
    const uint64_t key = next_request_++;
    requests_.emplace(key, std::move(owned));
    if (req.stream->cancel_requested()) {
      end_request(req, FinishReason::kCancelled, "");
      continue;
    }
    const SeqId id = next_seq_++;
    const SamplingParams& sp = req.request.sampling;
    SubmitResult r = scheduler_.submit({.id = id,
                                        .prompt = req.request.prompt,
                                        .max_new_tokens = sp.max_tokens,
                                        .priority = req.request.priority,
                                        .deadline = req.request.deadline,
                                        .arrival = req.request.arrival,
                                        .num_seqs = req.beams ? sp.beam_width() : sp.n});
    if (!r.ok()) {
      end_request(req, FinishReason::kError,
                  std::string(submit_status_name(r.status)) + ": " + r.message);
      continue;
    }
    if (req.beams) {
      req.beams->seqs = {id};
    } else {
      req.choices[0]->seq = id;
    }
    seqs_.emplace(id, std::make_pair(&req, 0));
    metrics_.add_prompt_tokens(req.prompt_len());
  }
  num_waiting_.store(scheduler_.num_waiting(), std::memory_order_release);
}

void EngineImpl::sweep_requests(Clock::time_point now) {
  for (auto& [key, owned] : requests_) {
    RequestState& req = *owned;
    if (req.num_finished == req.num_choices()) continue;
    if (req.stream->cancel_requested()) {
      end_request(req, FinishReason::kCancelled, "");
    } else if (req.request.deadline && now >= *req.request.deadline) {
      end_request(req, FinishReason::kDeadline, "deadline exceeded");
    }
  }
}

std::optional<Clock::time_point> EngineImpl::step() {
  const Clock::time_point now = Clock::now();
  // The speculation controller's price of a step: its time from start to end, less any wait
  // for the step before it to finish, except where that wait is what a pipelined step does
  // (it stands for the device time). A pipelined step after a drained pipeline waits for
  // nothing: not counted.
  Clock::time_point started = now;
  if (parts_.proposer != nullptr && plan_drafts()) started = Clock::now();
  StepPlan plan = scheduler_.schedule(now);
  if (parts_.proposer != nullptr) {
    parts_.proposer->forget(plan.preempted);
    parts_.proposer->forget(plan.released);
  }
  const int step_tokens = plan.num_tokens, step_seqs = static_cast<int>(plan.seqs.size());
  num_waiting_.store(scheduler_.num_waiting(), std::memory_order_release);
  handle_failed(plan);
  preemptions_ += static_cast<int64_t>(plan.preempted.size());
  metrics_.add_preemptions(static_cast<int>(plan.preempted.size()));
  // A step that asked for drafts runs synchronously also when none came back: the next
  // proposals need its tokens, and its price is then that of a drafting step.
  const bool pipelined = parts_.async_scheduling && !plan.empty() && spec_draft_len_ == 0 &&
                         executor_->can_launch(plan);
  // A step that needs the host between steps waits for the one in flight first.
  if (inflight_ && !pipelined) {
    complete_inflight();
    started = Clock::now();
  }
  const bool timed = parts_.proposer != nullptr && (!pipelined || inflight_);
  if (plan.empty()) {
    if (plan.retry_at != Clock::time_point{}) return plan.retry_at;
    return now + std::chrono::milliseconds(5);  // blocked on capacity: poll soon
  }
  note_scheduled(plan, now);
  if (debug_stall_step_ms_ > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(debug_stall_step_ms_));
  if (pipelined) {
    try {
      executor_->launch(plan);
    } catch (const std::exception& e) {
      if (inflight_) complete_inflight();
      note_step_failed(e.what());
      fail_step(plan, e);
      ++steps_;
      return std::nullopt;
    }
    // The previous step's tokens, while this one runs; then this step's are pending.
    if (inflight_) complete_inflight();
    std::vector<SampledToken> pending;
    for (const ScheduledSeq& s : plan.seqs)
      if (s.sample) pending.push_back({s.id, kPendingToken});
    scheduler_.update(plan, pending);
    if (timed) record_step_cost(plan, started, nullptr);
    inflight_ = std::move(plan);  // kept for failing its sequences, should the wait throw
    ++pipelined_steps_;
  } else {
    try {
      StepOutput out = executor_->execute(plan);
      advance_beams(out);
      scheduler_.update(plan, out.sampled);
      fork_beams();
      record_verifications(out);
      process_output(out);
      // Its tokens' handling counts, as a pipelined step's wait includes its predecessor's.
      if (timed) record_step_cost(plan, started, &out);
      consecutive_failed_steps_ = 0;
    } catch (const std::exception& e) {
      note_step_failed(e.what());
      fail_step(plan, e);
    }
  }
  ++steps_;
  metrics_.record_step(step_tokens, step_seqs);
  return std::nullopt;
}

void EngineImpl::complete_inflight() {
  const StepPlan plan = std::move(*inflight_);
  inflight_.reset();
  try {
    const StepOutput out = executor_->wait();
    for (const SampledToken& t : out.sampled) scheduler_.resolve_pending(t.id, t.token);
    process_output(out);
    consecutive_failed_steps_ = 0;
  } catch (const std::exception& e) {
    note_step_failed(e.what());
    fail_step(plan, e);
  }
}

std::vector<SeqId> EngineImpl::decoding_seqs() const {
  std::vector<SeqId> decoding;
  for (SeqId id : scheduler_.running_ids()) {
    const std::optional<SequenceInfo> info = scheduler_.info(id);
    if (!info || info->num_blocks == 0 || info->num_computed != info->num_tokens - 1) continue;
    // Beam search ranks every beam's next token each step: one token per step.
    if (auto it = seqs_.find(id); it != seqs_.end() && it->second.first->beams) continue;
    decoding.push_back(id);
  }
  return decoding;
}

bool EngineImpl::plan_drafts() {
  std::vector<SeqId> decoding = decoding_seqs();
  const int k = spec_draft_len_ = spec_.draft_len(static_cast<int>(decoding.size()));
  if (steps_ % 256 == 0 && spdlog::should_log(spdlog::level::debug))
    spdlog::debug("speculation: {}", spec_.describe(static_cast<int>(decoding.size())));
  if (k == 0) return false;  // this step may be pipelined like any other
  // Proposals read the latest tokens: the step in flight must have delivered them.
  const bool waited = inflight_.has_value();
  if (waited) {
    complete_inflight();
    decoding = decoding_seqs();
  }
  for (SeqId id : decoding)
    scheduler_.set_draft_len(id, parts_.proposer->draft_len(id, *scheduler_.tokens(id), k));
  return waited;
}

void EngineImpl::record_step_cost(const StepPlan& plan, Clock::time_point start,
                                  const StepOutput* out) {
  if (plan.seqs.empty()) return;
  for (const ScheduledSeq& s : plan.seqs)
    if (!s.sample || s.end - s.start != s.num_draft + 1) return;  // a prefill chunk in the step
  int64_t accepted = 0;
  if (out != nullptr)
    for (const SpecResult& r : out->spec) accepted += r.accepted;
  const auto n = static_cast<double>(plan.seqs.size());
  spec_.record_step(static_cast<int>(plan.seqs.size()), spec_draft_len_,
                    seconds(Clock::now() - start), (n + static_cast<double>(accepted)) / n);
}

void EngineImpl::record_verifications(const StepOutput& out) {
  int64_t examined = 0, accepted = 0;
  for (const SpecResult& r : out.spec) {
    examined += r.accepted + (r.accepted < r.drafted ? 1 : 0);
    accepted += r.accepted;
    metrics_.record_verification(r.drafted, r.accepted);
    if (auto it = seqs_.find(r.id); it != seqs_.end()) {
      ChoiceState& c = *it->second.first->choices[static_cast<size_t>(it->second.second)];
      c.spec_draft_tokens += r.drafted;
      c.spec_accepted_tokens += r.accepted;
    }
  }
  spec_.record(examined, accepted);
}

void EngineImpl::handle_failed(const StepPlan& plan) {
  for (const FailedSeq& f : plan.failed) {
    auto it = seqs_.find(f.id);
    if (it == seqs_.end()) continue;
    auto [req, choice] = it->second;
    // The scheduler already dropped the sequence; forget it before ending the choice.
    req->choices[static_cast<size_t>(choice)]->seq.reset();
    seqs_.erase(it);
    const FinishReason reason =
        f.reason == FailReason::kDeadline ? FinishReason::kDeadline : FinishReason::kError;
    end_choice_or_request(*req, choice, reason, f.message);
  }
}

void EngineImpl::note_scheduled(const StepPlan& plan, Clock::time_point now) {
  for (const ScheduledSeq& s : plan.seqs) {
    auto it = seqs_.find(s.id);
    if (it == seqs_.end()) continue;
    RequestState& req = *it->second.first;
    if (req.first_scheduled) continue;
    req.first_scheduled = now;
    metrics_.observe_queue_time(seconds(now - req.request.arrival));
    if (auto info = scheduler_.info(s.id))
      req.cached_prompt_tokens = info->num_cached_prompt_tokens;
  }
}

void EngineImpl::process_output(const StepOutput& out) {
  for (size_t i = 0; i < out.sampled.size(); ++i) {
    const SampledToken& st = out.sampled[i];
    auto it = seqs_.find(st.id);
    if (it == seqs_.end()) continue;
    auto [req, choice] = it->second;
    if (req->beams) continue;  // advance_beams handled it
    if (choice == 0 && req->num_choices() > 1 && !req->forked) fork_siblings(*req, st.id, out, i);
    on_token(*req, choice, st.token, out.logprobs[i]);
  }
}

void EngineImpl::fork_siblings(RequestState& req, SeqId parent, const StepOutput& out, size_t row) {
  req.forked = true;
  const SamplingParams& sp = req.request.sampling;
  for (int k = 1; k < req.num_choices(); ++k) {
    ChoiceState& c = *req.choices[static_cast<size_t>(k)];
    if (c.finished) continue;
    // Same logits row as the parent's first token, the sibling's own seed.
    const SampleResult r = sample_token(out.row(row), sp, {req.request.prompt, {}}, c.seed);
    const SeqId child = next_seq_++;
    scheduler_.fork(parent, child, r.token);
    c.seq = child;
    seqs_.emplace(child, std::make_pair(&req, k));
    on_token(req, k, r.token, r.logprob);
  }
}

void EngineImpl::on_token(RequestState& req, int choice, int32_t token,
                          std::optional<TokenLogprob> lp) {
  ChoiceState& c = *req.choices[static_cast<size_t>(choice)];
  if (c.finished) return;
  const Clock::time_point now = Clock::now();
  if (!req.first_token) {
    req.first_token = now;
    metrics_.observe_ttft(seconds(now - req.request.arrival));
  } else if (!c.output.empty()) {
    metrics_.observe_itl(seconds(now - c.last_token_time));
  }
  c.last_token_time = now;
  metrics_.add_generation_tokens(1);
  GenerationEvent ev = append_token(c, req.prompt_len(), token, std::move(lp), req.rules);
  if (ev.finish) {
    finish_choice(req, c, *ev.finish, "", std::move(ev));
  } else {
    req.stream->push(std::move(ev));
  }
}

void EngineImpl::note_step_failed(const std::string& error) {
  ++consecutive_failed_steps_;
  last_step_error_ = error;
  if (consecutive_failed_steps_ == kUnhealthyFailedSteps)
    spdlog::error("engine: {} steps in a row failed; /health reports failing",
                  kUnhealthyFailedSteps);
}

void EngineImpl::fail_step(const StepPlan& plan, const std::exception& e) {
  const SchedulerStats s = scheduler_.stats();
  spdlog::error(
      "engine step {} failed: {} (seqs={} tokens={} waiting={} running={} kv_used={}/{}); "
      "failing its requests",
      plan.step, e.what(), plan.seqs.size(), plan.num_tokens, s.num_waiting, s.num_running,
      s.kv.num_used, s.kv.num_total);
  const std::string message = std::string("internal error: ") + e.what();
  for (const ScheduledSeq& s2 : plan.seqs) {
    auto it = seqs_.find(s2.id);
    if (it == seqs_.end()) continue;
    auto [req, choice] = it->second;
    end_choice_or_request(*req, choice, FinishReason::kError, message);
  }
}

void EngineImpl::end_choice_or_request(RequestState& req, int choice, FinishReason reason,
                                       const std::string& error) {
  // Before the fork, the siblings of choice 0 exist only through it; beams share one fate.
  if (req.beams || (choice == 0 && req.num_choices() > 1 && !req.forked)) {
    end_request(req, reason, error);
    return;
  }
  ChoiceState& c = *req.choices[static_cast<size_t>(choice)];
  GenerationEvent ev;
  if (reason == FinishReason::kDeadline) ev.text = drain_pending_text(c);
  finish_choice(req, c, reason, error, std::move(ev));
}

void EngineImpl::end_request(RequestState& req, FinishReason reason, const std::string& error) {
  release_beams(req, /*natural=*/false);
  for (auto& c : req.choices) {
    if (c->finished) continue;
    GenerationEvent ev;
    if (reason == FinishReason::kDeadline) ev.text = drain_pending_text(*c);
    finish_choice(req, *c, reason, error, std::move(ev));
  }
}

void EngineImpl::finish_choice(RequestState& req, ChoiceState& c, FinishReason reason,
                               const std::string& error, GenerationEvent ev) {
  if (c.finished) return;
  c.finished = true;
  if (c.seq) {
    // Natural ends keep full blocks in the prefix cache; the scheduler frees the rest.
    if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
      scheduler_.finish(*c.seq);
    } else {
      scheduler_.abort(*c.seq);
    }
    seqs_.erase(*c.seq);
    c.seq.reset();
  }
  ev.index = c.index;
  ev.finish = reason;
  ev.error = error;
  ev.prompt_tokens = req.prompt_len();
  ev.completion_tokens = static_cast<int>(c.output.size());
  ev.cached_prompt_tokens = req.cached_prompt_tokens;
  ev.spec_draft_tokens = c.spec_draft_tokens;
  ev.spec_accepted_tokens = c.spec_accepted_tokens;
  req.stream->push(std::move(ev));
  if (!req.status || severity(reason) > severity(*req.status)) req.status = reason;
  if (++req.num_finished == req.num_choices()) on_request_done(req);
}

void EngineImpl::on_request_done(RequestState& req) {
  const Clock::time_point now = Clock::now();
  const double latency = seconds(now - req.request.arrival);
  int output_tokens = 0;
  for (const auto& c : req.choices) output_tokens += static_cast<int>(c->output.size());
  const std::string ttft =
      req.first_token ? fmt::format("{:.3f}s", seconds(*req.first_token - req.request.arrival))
                      : std::string("-");
  spdlog::info(
      "request {} finished: status={} prompt_tokens={} output_tokens={} ttft={} "
      "latency={:.3f}s",
      req.request.id, finish_reason_name(*req.status), req.prompt_len(), output_tokens, ttft,
      latency);
  metrics_.record_finished(*req.status, latency);
}

std::pair<int, int> EngineImpl::count_requests() const {
  // A request runs while any of its sequences does; it waits while some wait and none run.
  std::unordered_set<const RequestState*> running, waiting;
  for (SeqId id : scheduler_.running_ids()) {
    if (auto it = seqs_.find(id); it != seqs_.end()) running.insert(it->second.first);
  }
  for (SeqId id : scheduler_.waiting_ids()) {
    auto it = seqs_.find(id);
    if (it != seqs_.end() && !running.count(it->second.first)) waiting.insert(it->second.first);
  }
  return {static_cast<int>(waiting.size()), static_cast<int>(running.size())};
}

void EngineImpl::publish_stats(Clock::time_point now) {
  const SchedulerStats s = scheduler_.stats();
  const auto [waiting_requests, running_requests] = count_requests();
  metrics_.set_queues(waiting_requests, running_requests, s.num_running);
  metrics_.set_kv(s.kv.num_used, s.kv.num_total, parts_.scheduler.kv.block_size);
  metrics_.add_prefix_cache(s.kv.prefix_query_tokens - prefix_queries_seen_,
                            s.kv.prefix_hit_tokens - prefix_hits_seen_);
  prefix_queries_seen_ = s.kv.prefix_query_tokens;
  prefix_hits_seen_ = s.kv.prefix_hit_tokens;
  num_waiting_.store(s.num_waiting, std::memory_order_release);
  size_t inbox = 0;
  {
    std::lock_guard lock(signal_->mu);
    inbox = signal_->inbox.size();
  }
  const Ops::DeviceTimeline timeline = executor_->device_timeline();

  std::lock_guard lock(stats_mu_);
  stats_.live_requests = static_cast<int>(requests_.size() + inbox);
  stats_.consecutive_failed_steps = consecutive_failed_steps_;
  stats_.last_step_error = last_step_error_;
  stats_.waiting = s.num_waiting;
  stats_.running = s.num_running;
  stats_.preemptions_total = preemptions_;
  stats_.kv_blocks_used = s.kv.num_used;
  stats_.kv_blocks_total = s.kv.num_total;
  stats_.steps_total = steps_;
  stats_.pipelined_steps_total = pipelined_steps_;
  stats_.device_busy_seconds = timeline.busy_seconds;
  stats_.device_idle_seconds = timeline.idle_seconds;
  stats_.device_steps = timeline.steps;
  stats_.last_step_end = now;
}

void EngineImpl::fail_all(const std::string& message) {
  for (auto& [key, req] : requests_) {
    try {
      end_request(*req, FinishReason::kError, message);
    } catch (const std::exception& e) {
      spdlog::error("engine: could not end request {}: {}", req->request.id, e.what());
    }
  }
}

void EngineImpl::shutdown_requests() {
  admit_inbox();
  fail_all("engine stopped");
  requests_.clear();
  publish_stats(Clock::now());
}

}  // namespace tessera
