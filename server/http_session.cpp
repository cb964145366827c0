#include "server/http_session.h"

#include <malloc.h>
#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>

#include "server/http_generation.h"

namespace tessera {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

// A client that does not read its stream must not make us buffer without end.
constexpr size_t kMaxPendingBytes = 8u << 20;
// Lingering close: after an error reply, read and drop what the client still sends (up to
// this, for at most kLingerTime) so closing does not reset the connection before the client
// has read the reply.
constexpr size_t kMaxLingerBytes = 64u << 20;
constexpr milliseconds kLingerTime(2000);
// After a large body the handler thread hands its freed heap back to the OS.
constexpr size_t kTrimAfterBytes = 1u << 20;

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

const char* id_prefix(const std::string& path) {
  if (path == "/v1/completions") return "cmpl";
  if (path == "/v1/chat/completions") return "chatcmpl";
  return "req";
}

}  // namespace

HttpSession::HttpSession(HttpServer::Impl& server, net::ip::tcp::socket socket, uint64_t id)
    : server_(server),
      socket_(std::move(socket)),
      buffer_(server.options.max_header_bytes + (64u << 10)),
      deadline_(socket_.get_executor()),
      tick_(socket_.get_executor()),
      id_(id) {
  ++server_.open_connections;
}

HttpSession::~HttpSession() {
  if (streaming_) --server_.active_streams;
  set_busy(false);
  --server_.open_connections;
  server_.remove_session(id_);
}

void HttpSession::start() {
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

void HttpSession::server_stopping() {
  net::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->closed_) return;
    self->close_after_response_ = true;
    switch (self->phase_) {
      case Phase::kReadHeader:
      case Phase::kReadBody:
      case Phase::kIdle:
        self->close_now();
        return;
      default:
        if (self->gen_) self->gen_->cancel();
    }
  });
}

void HttpSession::force_close() {
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->client_gone("shutdown"); });
}

// ---- reading ----------------------------------------------------------------------------

void HttpSession::read_header() {
  if (closed_) return;
  if (watching_) {
    error_code ec;
    socket_.cancel(ec);  // a pending readiness wait must not race the read
  }
  phase_ = Phase::kReadHeader;
  timed_out_ = false;
  method_.clear();
  path_.clear();
  request_id_.clear();
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
  parser_->body_limit(server_.options.max_body_bytes);
  arm_deadline(milliseconds(server_.options.header_timeout_ms));
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
}

void HttpSession::on_header(error_code ec) {
  if (closed_) return;
  if (ec) return on_read_error(ec);
  const auto& h = parser_->get();
  path_ = std::string(h.target().substr(0, h.target().find('?')));
  method_ = std::string(h.method_string());
  // Beast refuses these too; checked here so the rule does not rest on a library detail.
  if (h.count(http::field::content_length) && h.count(http::field::transfer_encoding)) {
    return fail(400, "invalid_request",
                "Content-Length and Transfer-Encoding must not be sent together");
  }
  if (h.count(http::field::transfer_encoding) && !parser_->chunked()) {
    return fail(400, "invalid_request", "the only Transfer-Encoding accepted is chunked");
  }
  auto expect = h[http::field::expect];
  if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue),
                     [self = shared_from_this()](error_code ec, size_t) {
                       if (ec) return self->close_now();
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void HttpSession::read_body() {
  if (closed_) return;
  phase_ = Phase::kReadBody;
  if (parser_->is_done()) return on_body({});
  arm_deadline(milliseconds(server_.options.body_timeout_ms));
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
}

void HttpSession::on_read_error(error_code ec) {
  const bool header = phase_ == Phase::kReadHeader;
  if (parser_ && parser_->is_header_done() && path_.empty()) {
    const auto& h = parser_->get();
    path_ = std::string(h.target().substr(0, h.target().find('?')));
    method_ = std::string(h.method_string());
  }
  if (timed_out_) {
    // Nothing received: a connection that never spoke, closed without a word (as nginx does).
    if (header && buffer_.size() == 0) return close_now();
    return fail(
        408, "request_timeout",
        header ? "timed out reading the request headers" : "timed out reading the request body");
  }
  if (ec == http::error::body_limit) {
    return fail(413, "request_too_large",
                "request body too large (limit " + std::to_string(server_.options.max_body_bytes) +
                    " bytes)");
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return fail(431, "headers_too_large",
                "request headers too large (limit " +
                    std::to_string(server_.options.max_header_bytes) + " bytes)");
  }
  if (ec == http::error::bad_content_length || ec == http::error::bad_transfer_encoding) {
    return fail(400, "invalid_request",
                "conflicting or invalid Content-Length / Transfer-Encoding headers");
  }
  if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return fail(400, "invalid_request", "malformed HTTP request");
  }
  close_now();  // EOF, reset, or cancelled by shutdown
}

void HttpSession::on_body(error_code ec) {
  if (closed_) return;
  if (ec) return on_read_error(ec);
  disarm_deadline();
  auto msg = parser_->release();
  parser_.reset();
  HttpRequest req;
  req.method = method_;
  req.path = path_;
  req.body = std::move(msg.body());
  req.content_type = std::string(msg[http::field::content_type]);
  req.authorization = std::string(msg[http::field::authorization]);
  const auto given_sv = msg["X-Request-Id"];
  const std::string_view given(given_sv.data(), given_sv.size());
  req.request_id_given = valid_request_id(given);
  req.request_id =
      req.request_id_given ? std::string(given) : server_.new_request_id(id_prefix(path_));
  keep_alive_ = msg.keep_alive();
  chunked_ = msg.version() >= 11;
  dispatch(std::move(req));
}

void HttpSession::dispatch(HttpRequest req) {
  phase_ = Phase::kHandling;
  request_id_ = req.request_id;
  set_busy(true);
  if (HttpServer::Impl::runs_inline(req)) return on_handled(server_.handle(req));
  if (buffer_.size() == 0) watch_socket();
  net::post(*server_.handlers, [self = shared_from_this(), req = std::move(req)]() mutable {
    HandlerResult r = self->server_.handle(req);
    const bool big = req.body.size() >= kTrimAfterBytes;
    req.body = std::string();
    if (big) malloc_trim(0);
    net::post(self->socket_.get_executor(),
              [self, r = std::move(r)]() mutable { self->on_handled(std::move(r)); });
  });
}

void HttpSession::on_handled(HandlerResult result) {
  if (closed_) {
    if (result.generation) result.generation->cancel();
    return;
  }
  if (!result.generation) return respond(result.reply);
  gen_ = std::move(result.generation);
  if (server_.stopping.load()) gen_->cancel();
  if (gen_->streaming()) {
    server_.count_response(path_, 200);
    streaming_ = true;
    ++server_.active_streams;
    if (!chunked_) close_after_response_ = true;  // HTTP/1.0: the end of the stream is EOF
    send(head(200, "text/event-stream", std::nullopt, {{"Cache-Control", "no-cache"}}));
  }
  auto weak = weak_from_this();
  listening_ = gen_->set_listener([weak] {
    if (auto self = weak.lock()) self->schedule_pump();
  });
  arm_tick();
  pump();
}

// ---- generation output ------------------------------------------------------------------

void HttpSession::schedule_pump() {
  if (pump_scheduled_.exchange(true)) return;  // one wake-up in flight is enough
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->pump(); });
}

void HttpSession::pump() {
  pump_scheduled_.store(false);
  if (!gen_ || closed_) return;
  std::string out = gen_->drain();
  if (gen_->streaming()) {
    if (!out.empty()) send(frame(out));
    if (closed_ || !gen_->finished()) return;
    gen_.reset();
    phase_ = Phase::kResponding;
    response_done_ = true;
    arm_deadline(milliseconds(server_.options.body_timeout_ms));
    if (chunked_) return send("0\r\n\r\n");
    return maybe_complete();
  }
  if (!gen_->finished()) return;
  HttpReply reply = gen_->reply();
  gen_.reset();
  respond(reply);
}

void HttpSession::arm_tick() {
  // With a listener the tick only writes keep-alive comments; without, it also polls.
  milliseconds period(server_.options.stream_keepalive_ms);
  if (!listening_) period = std::min(period, milliseconds(10));
  tick_.expires_after(period);
  tick_.async_wait([self = shared_from_this(), seq = tick_seq_](error_code ec) {
    if (ec || seq != self->tick_seq_ || self->closed_) return;
    self->on_tick();
  });
}

void HttpSession::on_tick() {
  if (!gen_) return;
  if (!listening_) pump();
  if (closed_ || !gen_) return;
  const auto now = Clock::now();
  if (writing_ && now - write_started_ > milliseconds(server_.options.body_timeout_ms)) {
    return client_gone("client stopped reading");
  }
  // Idle (queued, or a long prefill): an SSE comment keeps proxies from timing out; a
  // non-streaming client is watched by its socket instead.
  if (streaming_ && !writing_ &&
      now - last_write_ >= milliseconds(server_.options.stream_keepalive_ms)) {
    send(frame(": keep-alive\n\n"));
  }
  if (!closed_) arm_tick();
}

// ---- writing ----------------------------------------------------------------------------

void HttpSession::respond(const HttpReply& reply) {
  server_.count_response(path_, reply.status);
  if (reply.status >= 500) {
    spdlog::warn("request {}: {} {} -> {}", request_id_, method_, path_, reply.status);
  } else {
    spdlog::debug("request {}: {} {} -> {}", request_id_, method_, path_, reply.status);
  }
  phase_ = Phase::kResponding;
  response_done_ = true;
  arm_deadline(milliseconds(server_.options.body_timeout_ms));  // a client that never reads
  send(head(reply.status, reply.content_type, reply.body.size(), reply.headers) + reply.body);
}

void HttpSession::fail(int status, const std::string& code, const std::string& message) {
  // The request (or its body) was not read to its end: the connection cannot be reused.
  close_after_response_ = true;
  if (request_id_.empty() || phase_ == Phase::kReadHeader || phase_ == Phase::kReadBody) {
    request_id_ = server_.new_request_id("req");
  }
  spdlog::info("request {}: {} {}: {} ({})", request_id_, method_.empty() ? "-" : method_,
               path_.empty() ? "-" : path_, status, message);
  const char* type = status == 408 ? "timeout_error" : "invalid_request_error";
  respond(error_reply(ApiError(status, type, message, std::nullopt, code)));
}

std::string HttpSession::head(int status, const std::string& content_type,
                              std::optional<size_t> length,
                              const std::vector<std::pair<std::string, std::string>>& extra) {
  const bool keep =
      keep_alive_ && !close_after_response_ && !server_.stopping.load() && !server_.draining.load();
  if (!keep) close_after_response_ = true;
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                  std::string(http::obsolete_reason(static_cast<http::status>(status))) +
                  "\r\nServer: tessera\r\nContent-Type: " + content_type + "\r\n";
  if (length) {
    h += "Content-Length: " + std::to_string(*length) + "\r\n";
  } else if (chunked_) {
    h += "Transfer-Encoding: chunked\r\n";
  }
  if (!request_id_.empty()) h += "X-Request-Id: " + request_id_ + "\r\n";
  for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  h += keep ? (chunked_ ? "" : "Connection: keep-alive\r\n") : "Connection: close\r\n";
  h += "\r\n";
  return h;
}

std::string HttpSession::frame(const std::string& data) const {
  if (!chunked_ || data.empty()) return data;
  char size[20];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return std::string(size, size_t(n)) + data + "\r\n";
}

void HttpSession::send(std::string bytes) {
  if (closed_) return;
  pending_ += bytes;
  if (pending_.size() > kMaxPendingBytes) return client_gone("client is not reading");
  if (!writing_) {
    if (pending_.empty()) return maybe_complete();
    do_write();
  }
}

void HttpSession::do_write() {
  writing_ = true;
  inflight_.swap(pending_);
  pending_.clear();
  write_started_ = Clock::now();
  net::async_write(socket_, net::buffer(inflight_),
                   [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
}

void HttpSession::on_write(error_code ec) {
  writing_ = false;
  inflight_.clear();
  if (closed_) return;
  if (ec) return client_gone("write failed");
  last_write_ = Clock::now();
  if (!pending_.empty()) return do_write();
  maybe_complete();
}

void HttpSession::maybe_complete() {
  if (response_done_ && !writing_ && pending_.empty() && !closed_) response_complete();
}

void HttpSession::response_complete() {
  response_done_ = false;
  ++tick_seq_;
  tick_.cancel();
  disarm_deadline();
  if (streaming_) {
    streaming_ = false;
    --server_.active_streams;
  }
  gen_.reset();
  set_busy(false);
  if (close_after_response_) return close_gracefully();
  phase_ = Phase::kIdle;
  if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
  if (buffer_.capacity() > (64u << 10)) buffer_.shrink_to_fit();
  if (!watching_) watch_socket();
  arm_deadline(milliseconds(server_.options.keepalive_timeout_ms));
}

// ---- watching the socket ----------------------------------------------------------------

void HttpSession::watch_socket() {
  watching_ = true;
  socket_.async_wait(net::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](error_code ec) { self->on_readable(ec); });
}

void HttpSession::on_readable(error_code ec) {
  watching_ = false;
  if (closed_ || ec == net::error::operation_aborted) return;
  if (ec) return client_gone("connection error");
  if (phase_ == Phase::kIdle) {
    disarm_deadline();
    return read_header();
  }
  if (phase_ != Phase::kHandling && phase_ != Phase::kResponding) return;
  char c;
  const ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return client_gone("client disconnected");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return watch_socket();
    return client_gone("connection error");
  }
  // A pipelined request: it waits in the socket until this response is written.
}

void HttpSession::client_gone(const char* why) {
  if (closed_) return;
  if (gen_) {
    spdlog::info("request {}: {}, cancelling", request_id_, why);
    gen_->cancel();
  }
  close_now();
}

// ---- timers and closing -----------------------------------------------------------------

void HttpSession::arm_deadline(milliseconds d) {
  const uint64_t seq = ++deadline_seq_;
  deadline_.expires_after(d);
  deadline_.async_wait([self = shared_from_this(), seq](error_code ec) {
    if (ec || seq != self->deadline_seq_ || self->closed_) return;
    self->on_deadline();
  });
}

void HttpSession::disarm_deadline() {
  ++deadline_seq_;
  deadline_.cancel();
}

void HttpSession::on_deadline() {
  if (phase_ == Phase::kReadHeader || phase_ == Phase::kReadBody) {
    timed_out_ = true;  // the read completes as aborted and answers 408
    error_code ec;
    socket_.cancel(ec);
    return;
  }
  client_gone("timed out");  // idle keep-alive, a stuck write, or a lingering close
}

void HttpSession::close_gracefully() {
  phase_ = Phase::kClosing;
  error_code ec;
  socket_.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  if (ec) return close_now();
  arm_deadline(kLingerTime);
  linger_buf_.resize(16u << 10);
  linger_read();
}

void HttpSession::linger_read() {
  socket_.async_read_some(net::buffer(linger_buf_),
                          [self = shared_from_this()](error_code ec, size_t n) {
                            if (self->closed_) return;
                            self->lingered_ += n;
                            if (ec || self->lingered_ > kMaxLingerBytes) return self->close_now();
                            self->linger_read();
                          });
}

void HttpSession::close_now() {
  if (closed_) return;
  closed_ = true;
  phase_ = Phase::kClosed;
  disarm_deadline();
  ++tick_seq_;
  tick_.cancel();
  error_code ec;
  socket_.close(ec);
  if (streaming_) {
    streaming_ = false;
    --server_.active_streams;
  }
  gen_.reset();  // a generation still running is cancelled by its StreamGroup
  set_busy(false);
  std::vector<char>().swap(linger_buf_);
}

void HttpSession::set_busy(bool busy) {
  if (busy == busy_) return;
  busy_ = busy;
  if (busy) {
    ++server_.busy_connections;
  } else {
    --server_.busy_connections;
  }
}

}  // namespace tessera
