#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/metrics.h"
#include "engine/engine.h"
#include "inference.grpc.pb.h"
#include "model/tokenizer.h"
#include "server/api_error.h"
#include "server/grpc_errors.h"
#include "server/grpc_server.h"
#include "server/request_validation.h"

namespace tessera {

namespace pb = ::tessera::v1;

namespace {

constexpr auto kPollSlice = std::chrono::milliseconds(100);
constexpr int kDefaultMaxTokens = 16;

// The proto path of a field the shared validators name by its HTTP (flat) name.
std::string proto_field(const std::optional<std::string>& param) {
  static const char* kSampling[] = {"temperature",
                                    "top_p",
                                    "top_k",
                                    "min_p",
                                    "repetition_penalty",
                                    "presence_penalty",
                                    "frequency_penalty",
                                    "seed",
                                    "max_tokens",
                                    "stop",
                                    "stop_token_ids",
                                    "logprobs",
                                    "n",
                                    "best_of",
                                    "length_penalty"};
  if (!param) return "";
  for (const char* f : kSampling) {
    if (*param == f) return "sampling." + *param;
  }
  return *param;
}

pb::FinishReason to_proto(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return pb::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return pb::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled:
      return pb::FINISH_REASON_CANCELLED;
    case FinishReason::kDeadline:
      return pb::FINISH_REASON_DEADLINE;
    case FinishReason::kError:
      return pb::FINISH_REASON_ERROR;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

SamplingParams to_sampling(const pb::SamplingParams& p) {
  SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_top_k()) s.top_k = p.top_k() == -1 ? 0 : p.top_k();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  if (p.has_seed()) s.seed = p.seed();
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  if (p.has_logprobs()) {
    if (p.logprobs() < 0) throw invalid_param("logprobs", "must be >= 0");
    s.logprobs = p.logprobs();
  }
  if (p.has_n()) s.n = p.n();
  if (p.has_skip_special_tokens()) s.skip_special_tokens = p.skip_special_tokens();
  s.use_beam_search = p.use_beam_search();
  if (p.has_best_of()) {
    if (p.best_of() < 1) throw invalid_param("best_of", "must be >= 1");
    s.best_of = p.best_of();
  }
  if (p.has_length_penalty()) s.length_penalty = p.length_penalty();
  return s;
}

}  // namespace

class InferenceService final : public pb::Inference::Service {
 public:
  InferenceService(Engine& engine, const GrpcOptions& options, metrics::Registry& registry)
      : engine_(engine), options_(options), registry_(registry) {}

  void begin_shutdown() { stopping_.store(true); }
  void begin_drain() { draining_.store(true); }

  grpc::Status Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* req,
                        grpc::ServerWriter<pb::GenerateResponse>* writer) override {
    return count("Generate", guarded(
                                 "Generate", [&] { return generate(ctx, *req, *writer); }, ctx));
  }

  grpc::Status Tokenize(grpc::ServerContext* ctx, const pb::TokenizeRequest* req,
                        pb::TokenizeResponse* resp) override {
    return count("Tokenize",
                 guarded(
                     "Tokenize",
                     [&] {
                       check_model(req->model());
                       bool add = req->has_add_special_tokens() ? req->add_special_tokens() : true;
                       auto ids = engine_.tokenizer().encode(req->text(), add, true);
                       for (int32_t id : ids) resp->add_token_ids(id);
                       resp->set_max_model_len(engine_.max_model_len());
                       return grpc::Status::OK;
                     },
                     ctx));
  }

  grpc::Status Health(grpc::ServerContext*, const pb::HealthRequest*,
                      pb::HealthResponse* resp) override {
    // Health stays open without a key, like HTTP /health (probes carry no credentials).
    const EngineHealth h =
        engine_health(engine_.stats(), started_, options_.health_stall_timeout_ms);
    resp->set_status(h.ok ? pb::HealthResponse::SERVING : pb::HealthResponse::NOT_SERVING);
    resp->set_ready(engine_.ready() && !draining_.load());
    resp->set_last_step_age_ms(h.last_step_age_ms);
    return count("Health", grpc::Status::OK);
  }

  grpc::Status ModelInfo(grpc::ServerContext* ctx, const pb::ModelInfoRequest*,
                         pb::ModelInfoResponse* resp) override {
    return count("ModelInfo", guarded(
                                  "ModelInfo",
                                  [&] {
                                    const Tokenizer& tok = engine_.tokenizer();
                                    resp->set_model(engine_.model_name());
                                    resp->set_max_model_len(engine_.max_model_len());
                                    resp->set_vocab_size(tok.vocab_size());
                                    resp->set_bos_token_id(tok.bos_id());
                                    resp->set_eos_token_id(tok.eos_id());
                                    for (int32_t id : tok.stop_ids()) resp->add_stop_token_ids(id);
                                    resp->set_batching_policy(options_.batching_policy);
                                    resp->set_device(options_.device);
                                    return grpc::Status::OK;
                                  },
                                  ctx));
  }

 private:
  template <class F>
  grpc::Status guarded(const char* method, F f, grpc::ServerContext* ctx) {
    try {
      check_auth(ctx);
      return f();
    } catch (const ApiError& e) {
      if (e.status() >= 500 && e.status() != 503) return internal_status(method, e);
      return to_status(e, proto_field(e.param()));
    } catch (const Error& e) {
      const ApiError api = api_error_from(e);
      if (api.status() >= 500) return internal_status(method, e);
      return to_status(api, proto_field(api.param()));
    } catch (const std::exception& e) {
      return internal_status(method, e);  // library text stays in the log
    }
  }

  grpc::Status count(const char* method, grpc::Status st) {
    registry_
        .counter("tessera:grpc_requests_total", "gRPC calls by method and status code.",
                 {{"method", method}, {"code", std::to_string(int(st.error_code()))}})
        .inc();
    return st;
  }

  void check_auth(grpc::ServerContext* ctx) const {
    if (options_.api_key.empty()) return;
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    std::string expected = "Bearer " + options_.api_key;
    if (it == md.end() || std::string(it->second.data(), it->second.size()) != expected) {
      throw ApiError(401, "invalid_request_error", "missing or incorrect API key");
    }
  }

  void check_model(const std::string& model) const {
    if (!model.empty() && model != engine_.model_name()) {
      throw ApiError(404, "invalid_request_error",
                     "The model '" + model + "' does not exist (this server serves '" +
                         engine_.model_name() + "')",
                     "model", "model_not_found");
    }
  }

  GenerationRequest to_request(grpc::ServerContext* ctx, const pb::GenerateRequest& req) {
    check_model(req.model());
    const Tokenizer& tok = engine_.tokenizer();
    GenerationRequest g;
    g.id = req.request_id().empty() ? "grpc-" + std::to_string(next_id_.fetch_add(1))
                                    : req.request_id();
    switch (req.prompt_case()) {
      case pb::GenerateRequest::kText:
        g.prompt = tok.encode(req.text(), /*add_special=*/true, /*parse_special=*/true);
        break;
      case pb::GenerateRequest::kTokenIds:
        g.prompt.assign(req.token_ids().ids().begin(), req.token_ids().ids().end());
        break;
      default:
        throw invalid_param("prompt", "is required (text or token_ids)");
    }
    validate_prompt_tokens(g.prompt, tok.vocab_size(), "prompt");
    g.sampling = to_sampling(req.sampling());
    std::optional<int64_t> max_tokens;
    if (req.sampling().has_max_tokens()) max_tokens = req.sampling().max_tokens();
    g.sampling.max_tokens = resolve_max_tokens(int(g.prompt.size()), max_tokens, kDefaultMaxTokens,
                                               engine_.max_model_len(), "max_tokens", "prompt");
    validate_sampling(g.sampling, tok.vocab_size());
    g.priority = req.priority();
    g.arrival = Clock::now();
    // The call's deadline becomes the request's: the scheduler can then drop it in time.
    auto deadline = ctx->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      g.deadline = g.arrival + std::chrono::duration_cast<Clock::duration>(
                                   deadline - std::chrono::system_clock::now());
    }
    return g;
  }

  grpc::Status generate(grpc::ServerContext* ctx, const pb::GenerateRequest& req,
                        grpc::ServerWriter<pb::GenerateResponse>& writer) {
    if (stopping_.load() || draining_.load())
      throw ApiError(503, "service_unavailable", "server is shutting down");
    GenerationRequest g = to_request(ctx, req);
    const std::string id = g.id;
    const int prompt_len = int(g.prompt.size());
    std::shared_ptr<ResultStream> stream = engine_.submit(std::move(g));
    while (!stream->done()) {
      if (ctx->IsCancelled() || stopping_.load()) {
        stream->cancel();
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      auto ev = stream->next(kPollSlice);
      if (!ev) continue;
      pb::GenerateResponse out;
      out.set_request_id(id);
      out.set_index(ev->index);
      for (int32_t t : ev->token_ids) out.add_token_ids(t);
      out.set_text(ev->text);
      for (const auto& lp : ev->logprobs) {
        pb::TokenLogprob* p = out.add_logprobs();
        p->set_token(lp.token);
        p->set_logprob(lp.logprob);
        for (const auto& [tid, l] : lp.top) {
          p->add_top_tokens(tid);
          p->add_top_logprobs(l);
        }
      }
      if (ev->finish) {
        out.set_finish_reason(to_proto(*ev->finish));
        out.set_error(ev->error);
        pb::Usage* u = out.mutable_usage();
        u->set_prompt_tokens(ev->prompt_tokens > 0 ? ev->prompt_tokens : prompt_len);
        u->set_completion_tokens(ev->completion_tokens);
        u->set_cached_prompt_tokens(ev->cached_prompt_tokens);
        u->set_spec_draft_tokens(ev->spec_draft_tokens);
        u->set_spec_accepted_tokens(ev->spec_accepted_tokens);
        if (ev->beam_score) out.set_beam_score(*ev->beam_score);
      }
      if (!writer.Write(out)) {  // the client went away
        stream->cancel();
        return grpc::Status(grpc::StatusCode::CANCELLED, "client disconnected");
      }
    }
    return grpc::Status::OK;
  }

  Engine& engine_;
  GrpcOptions options_;
  metrics::Registry& registry_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{0};
  Clock::time_point started_ = Clock::now();
};

struct GrpcServer::Impl {
  Impl(Engine& e, GrpcOptions o, metrics::Registry& r)
      : options(std::move(o)), service(e, options, r) {}
  GrpcOptions options;
  InferenceService service;
  std::unique_ptr<grpc::Server> server;
  int bound_port = 0;
};

GrpcServer::GrpcServer(Engine& engine, GrpcOptions options, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(engine, std::move(options), registry)) {}

GrpcServer::~GrpcServer() {
  stop();
}

void GrpcServer::start() {
  grpc::ServerBuilder builder;
  const std::string addr = impl_->options.host + ":" + std::to_string(impl_->options.port);
  // As for HTTP: no SO_REUSEPORT, so a port already in use fails here instead of sharing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &impl_->bound_port);
  builder.RegisterService(&impl_->service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(make_status_interceptor_factory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->bound_port == 0) {
    impl_->server.reset();
    throw Error(ErrorKind::kInvalidArgument, "cannot bind gRPC server to " + addr);
  }
}

int GrpcServer::port() const {
  return impl_->bound_port;
}

void GrpcServer::begin_drain() {
  impl_->service.begin_drain();
}

void GrpcServer::stop() {
  if (!impl_->server) return;
  impl_->service.begin_shutdown();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace tessera
