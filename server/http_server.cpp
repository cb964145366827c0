// HttpServer: binding, the I/O threads, drain and stop. Connections: http_session.cpp;
// accepting them: http_listener.cpp; routes: http_routes.cpp, http_generate.cpp.
#include "server/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include "common/error.h"
#include "model/tokenizer.h"
#include "server/http_internal.h"

namespace tessera {

namespace {

// Every connection is a descriptor: lift the soft limit to the hard one (often 1024 ->
// 1M), and keep some for the model files, logs and gRPC.
int raise_nofile_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) {
      spdlog::debug("RLIMIT_NOFILE raised from {} to {}", rl.rlim_cur, rl.rlim_max);
      rl = want;
    }
  }
  return static_cast<int>(std::min<rlim_t>(rl.rlim_cur, 1u << 30));
}

int handler_threads(const HttpOptions& o) {
  const int cores = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  return std::clamp(o.threads, 1, cores);
}

}  // namespace

HttpServer::Impl::Impl(Engine& e, HttpOptions o, metrics::Registry& r, ChatRenderer c)
    : engine(e),
      options(std::move(o)),
      registry(r),
      render_chat(std::move(c)),
      acceptor(ioc),
      accept_retry(ioc) {
  apply_http_env_overrides(options);
  options.io_threads = std::max(1, options.io_threads);
  handlers = std::make_unique<net::thread_pool>(handler_threads(options));
  std::random_device rd;
  id_salt = fmt::format("{:08x}", rd());
}

HttpServer::Impl::~Impl() {
  // Handler tasks reference this object; let them finish before any member goes.
  handlers->join();
  boost::system::error_code ec;
  acceptor.close(ec);
}

ParseContext HttpServer::Impl::parse_context() const {
  ParseContext ctx;
  ctx.served_model = engine.model_name();
  ctx.tokenizer = &engine.tokenizer();
  ctx.max_model_len = engine.max_model_len();
  ctx.render_chat = render_chat;
  return ctx;
}

std::string HttpServer::Impl::new_request_id(const char* prefix) {
  return fmt::format("{}-{}{:06x}", prefix, id_salt, next_id.fetch_add(1));
}

HttpServer::HttpServer(Engine& engine, HttpOptions options, metrics::Registry& registry,
                       ChatRenderer render_chat)
    : impl_(std::make_unique<Impl>(engine, std::move(options), registry, std::move(render_chat))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::bind() {
  // Writes to a vanished client must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  Impl& s = *impl_;
  const int nofile = raise_nofile_limit();
  s.max_connections = std::max(1, std::min(s.options.max_connections, nofile - 128));
  if (s.max_connections < s.options.max_connections) {
    spdlog::info("HTTP connections capped at {} by RLIMIT_NOFILE ({})", s.max_connections, nofile);
  }
  namespace ip = net::ip;
  boost::system::error_code ec;
  ip::tcp::endpoint ep;
  ip::address addr = ip::make_address(s.options.host, ec);
  if (!ec) {
    ep = ip::tcp::endpoint(addr, static_cast<uint16_t>(s.options.port));
  } else {
    ip::tcp::resolver resolver(s.ioc);
    auto results = resolver.resolve(s.options.host, std::to_string(s.options.port), ec);
    if (!ec && !results.empty()) ep = results.begin()->endpoint();
  }
  if (!ec) s.acceptor.open(ep.protocol(), ec);
  // SO_REUSEADDR (restart while old connections linger) but never SO_REUSEPORT, which would
  // let a second server bind this port and silently take half its connections.
  if (!ec) s.acceptor.set_option(ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    throw Error(ErrorKind::kInvalidArgument, "cannot bind HTTP server to " + s.options.host + ":" +
                                                 std::to_string(s.options.port) + ": " +
                                                 ec.message());
  }
  s.bound_port = s.acceptor.local_endpoint().port();
}

int HttpServer::port() const {
  return impl_->bound_port;
}

void HttpServer::run() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.run_mu);
    if (s.stopping.load() || !s.acceptor.is_open()) return;
    s.running = true;
  }
  s.start_accept();
  std::vector<std::thread> extra;
  for (int i = 1; i < s.options.io_threads; ++i) extra.emplace_back([&s] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : extra) t.join();
  {
    std::lock_guard lock(s.run_mu);
    s.running = false;
  }
  s.run_cv.notify_all();
}

void HttpServer::begin_drain() {
  if (!impl_->draining.exchange(true)) {
    spdlog::info("HTTP: draining (/ready is 503, new completions are refused)");
  }
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (!s.stopping.exchange(true)) {
    net::post(s.ioc, [&s] { s.shutdown_sequence(); });
  }
  if (s.ioc.get_executor().running_in_this_thread()) return;
  std::unique_lock lock(s.run_mu);
  // The sequence itself gives up after ~6 s; the margin covers a loop that is wedged.
  s.run_cv.wait_for(lock, std::chrono::seconds(10), [&s] { return !s.running; });
}

}  // namespace tessera
