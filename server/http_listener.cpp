// Accepting connections (with a cap), the registry of live sessions, and the shutdown
// sequence that stop() starts.
#include <sys/socket.h>

#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>

#include "server/http_internal.h"
#include "server/http_session.h"
#include "server/openai_response.h"

namespace tessera {

namespace {

using boost::system::error_code;
using std::chrono::milliseconds;

// Rate-limits a warning that a flood would otherwise repeat thousands of times a second.
bool should_warn(std::atomic<int64_t>& last_ms) {
  const int64_t now =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  int64_t prev = last_ms.load();
  return now - prev >= 5000 && last_ms.compare_exchange_strong(prev, now);
}

// Over the connection cap: a short, complete answer and a close, written without waiting
// (the client gets a clear 503 instead of a hang or a reset).
void refuse(net::ip::tcp::socket& sock) {
  static const std::string kReply = [] {
    std::string body =
        dump_json(ApiError(503, "service_unavailable", "too many open connections; retry later",
                           std::nullopt, "too_many_connections")
                      .to_json());
    return "HTTP/1.1 503 Service Unavailable\r\nServer: tessera\r\nContent-Type: "
           "application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
  }();
  (void)::send(sock.native_handle(), kReply.data(), kReply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  error_code ec;
  sock.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  sock.close(ec);
}

// Waits for busy connections to finish (their requests were cancelled, so streams end with
// a finish chunk and [DONE]), then closes whatever is left and stops the loop.
struct ShutdownWaiter : std::enable_shared_from_this<ShutdownWaiter> {
  explicit ShutdownWaiter(HttpServer::Impl& s) : server(s), timer(s.ioc) {}
  HttpServer::Impl& server;
  net::steady_timer timer;
  Clock::time_point give_up = Clock::now() + std::chrono::seconds(5);
  bool forced = false;

  void step() {
    const auto now = Clock::now();
    if (!forced && (server.busy_connections.load() == 0 || now > give_up)) {
      forced = true;
      for (auto& s : server.live_sessions()) s->force_close();
      give_up = now + milliseconds(500);
    }
    if (forced && (server.open_connections.load() == 0 || now > give_up)) {
      server.ioc.stop();
      return;
    }
    timer.expires_after(milliseconds(10));
    timer.async_wait([self = shared_from_this()](error_code) { self->step(); });
  }
};

}  // namespace

void HttpServer::Impl::start_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](error_code ec, net::ip::tcp::socket sock) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      static std::atomic<int64_t> last_warn{0};
      if (should_warn(last_warn)) spdlog::warn("HTTP accept failed: {}", ec.message());
      // Out of descriptors (EMFILE) repeats at once: give closing connections time first.
      accept_retry.expires_after(milliseconds(50));
      accept_retry.async_wait([this](error_code e) {
        if (!e) start_accept();
      });
      return;
    }
    if (open_connections.load() >= max_connections) {
      static std::atomic<int64_t> last_warn{0};
      if (should_warn(last_warn)) {
        spdlog::warn("HTTP: {} connections open (the cap); refusing new ones with 503",
                     max_connections);
      }
      count_response("", 503);
      refuse(sock);
    } else {
      error_code ignored;
      sock.set_option(net::ip::tcp::no_delay(true), ignored);  // SSE chunks go out at once
      uint64_t id;
      {
        std::lock_guard lock(sessions_mu);
        id = ++next_session;
      }
      auto session = std::make_shared<HttpSession>(*this, std::move(sock), id);
      add_session(session);
      session->start();
    }
    start_accept();
  });
}

void HttpServer::Impl::add_session(const std::shared_ptr<HttpSession>& s) {
  std::lock_guard lock(sessions_mu);
  sessions.emplace(s->id(), s);
}

void HttpServer::Impl::remove_session(uint64_t id) {
  std::lock_guard lock(sessions_mu);
  sessions.erase(id);
}

std::vector<std::shared_ptr<HttpSession>> HttpServer::Impl::live_sessions() {
  std::vector<std::shared_ptr<HttpSession>> out;
  std::lock_guard lock(sessions_mu);
  out.reserve(sessions.size());
  for (auto& [id, weak] : sessions) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

void HttpServer::Impl::shutdown_sequence() {
  error_code ec;
  acceptor.close(ec);
  accept_retry.cancel();
  for (auto& s : live_sessions()) s->server_stopping();
  std::make_shared<ShutdownWaiter>(*this)->step();
}

}  // namespace tessera
