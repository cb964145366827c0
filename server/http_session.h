#pragma once
// One HTTP/1.1 connection, driven by asynchronous reads, writes and timers on its strand; it
// holds no thread while it waits. Life of a request:
//   read headers (header timeout) -> read body (body timeout, size limit, chunked or not)
//   -> handle (inline for GETs, else on the handler pool) -> reply, or stream the
//   generation's output as the engine signals it -> keep-alive wait (idle timeout) or close.
// While a request is handled or generating, the socket is watched for EOF, so a client that
// leaves cancels its request at once, streaming or not.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "server/http_internal.h"

namespace tessera {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(HttpServer::Impl& server, net::ip::tcp::socket socket, uint64_t id);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  uint64_t id() const { return id_; }
  void start();
  // Any thread. The server stops: cancel the request in flight (its stream still ends
  // cleanly), close once answered; idle connections close now.
  void server_stopping();
  void force_close();

 private:
  enum class Phase { kReadHeader, kReadBody, kHandling, kResponding, kIdle, kClosing, kClosed };
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  void read_header();
  void on_header(boost::system::error_code ec);
  void read_body();
  void on_body(boost::system::error_code ec);
  void on_read_error(boost::system::error_code ec);
  void dispatch(HttpRequest req);
  void on_handled(HandlerResult result);

  void schedule_pump();  // any thread
  void pump();
  void arm_tick();
  void on_tick();

  void respond(const HttpReply& reply);
  void fail(int status, const std::string& code, const std::string& message);
  std::string head(int status, const std::string& content_type, std::optional<size_t> length,
                   const std::vector<std::pair<std::string, std::string>>& extra);
  std::string frame(const std::string& data) const;
  void send(std::string bytes);
  void do_write();
  void on_write(boost::system::error_code ec);
  void maybe_complete();
  void response_complete();

  void watch_socket();
  void on_readable(boost::system::error_code ec);
  void client_gone(const char* why);

  void arm_deadline(std::chrono::milliseconds d);
  void disarm_deadline();
  void on_deadline();
  void close_gracefully();
  void linger_read();
  void close_now();
  void set_busy(bool busy);

  HttpServer::Impl& server_;
  net::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  net::steady_timer deadline_;
  net::steady_timer tick_;
  const uint64_t id_;

  Phase phase_ = Phase::kReadHeader;
  uint64_t deadline_seq_ = 0;
  uint64_t tick_seq_ = 0;
  bool timed_out_ = false;
  bool closed_ = false;
  bool busy_ = false;
  bool watching_ = false;
  bool keep_alive_ = true;
  bool chunked_ = true;  // HTTP/1.1: streams use chunked framing; 1.0: raw, then close
  bool close_after_response_ = false;

  // The request being answered.
  std::string method_;
  std::string path_;
  std::string request_id_;
  std::shared_ptr<Generation> gen_;
  bool listening_ = false;  // gen_ signals output; else the tick polls it
  bool streaming_ = false;  // SSE headers sent, counted in active_streams
  std::atomic<bool> pump_scheduled_{false};

  // Output: bytes queued while a write is in flight are sent by the next one.
  std::string pending_;
  std::string inflight_;
  bool writing_ = false;
  bool response_done_ = false;  // everything of this response is queued
  Clock::time_point write_started_;
  Clock::time_point last_write_ = Clock::now();

  std::vector<char> linger_buf_;
  size_t lingered_ = 0;
};

}  // namespace tessera
