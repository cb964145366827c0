#include "engine/tp_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/error.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kMagic = 0x54505431;  // "TPT1": bumps with the frame layout
constexpr uint64_t kMaxFrame = uint64_t{1} << 30;

[[noreturn]] void fail(const std::string& what) {
  throw Error(ErrorKind::kInternal, "tensor-parallel channel: " + what);
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

// Waits until fd is readable/writable; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) fail(std::string("poll: ") + std::strerror(errno));
  }
}

void send_all(int fd, const void* data, size_t size, Clock::time_point deadline,
              const std::string& who) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    if (!wait_fd(fd, POLLOUT, deadline)) fail(who + " did not take a frame in time");
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      fail(who + " is gone (" + std::strerror(errno) + ")");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// false on a clean EOF before the first byte.
bool recv_all(int fd, void* data, size_t size, Clock::time_point deadline, const std::string& who) {
  auto* p = static_cast<uint8_t*>(data);
  size_t got = 0;
  while (got < size) {
    if (!wait_fd(fd, POLLIN, deadline)) fail("nothing from " + who + " in time");
    const ssize_t n = ::recv(fd, p + got, size - got, MSG_DONTWAIT);
    if (n == 0) {
      if (got == 0) return false;
      fail(who + " closed the channel mid-frame");
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      fail(who + ": " + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

void send_frame(int fd, const std::string& s, Clock::time_point deadline, const std::string& who) {
  const uint64_t n = s.size();
  send_all(fd, &n, sizeof n, deadline, who);
  send_all(fd, s.data(), s.size(), deadline, who);
}

bool recv_frame(int fd, std::string& s, Clock::time_point deadline, const std::string& who) {
  uint64_t n = 0;
  if (!recv_all(fd, &n, sizeof n, deadline, who)) return false;
  if (n > kMaxFrame) fail("frame of " + std::to_string(n) + " bytes from " + who);
  s.resize(n);
  if (n > 0 && !recv_all(fd, s.data(), n, deadline, who)) fail(who + " closed mid-frame");
  return true;
}

struct Hello {
  uint32_t magic;
  int32_t rank;
  int32_t world;
};

void no_delay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

TpEndpoint TpEndpoint::parse(const std::string& s) {
  const size_t colon = s.rfind(':');
  TpEndpoint e;
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw Error(ErrorKind::kInvalidArgument, "--master must be HOST:PORT, got '" + s + "'");
  e.host = s.substr(0, colon);
  try {
    size_t used = 0;
    e.port = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    throw Error(ErrorKind::kInvalidArgument, "--master port is not a number in '" + s + "'");
  }
  if (e.port < 0 || e.port > 65535)
    throw Error(ErrorKind::kInvalidArgument, "--master port out of range in '" + s + "'");
  return e;
}

TpMaster::TpMaster(const TpEndpoint& bind, int world) : world_(world) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(bind.port));
  if (bind.host.empty() || bind.host == "0.0.0.0") {
    a.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (::inet_pton(AF_INET, bind.host.c_str(), &a.sin_addr) != 1) {
    ::close(listen_fd_);
    throw Error(ErrorKind::kInvalidArgument, "tensor parallel: bad bind address " + bind.host);
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, world) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_fd_);
    fail("cannot listen on " + bind.host + ":" + std::to_string(bind.port) + ": " + why);
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  worker_fd_.assign(world > 0 ? world - 1 : 0, -1);
}

TpMaster::~TpMaster() {
  for (int fd : worker_fd_)
    if (fd >= 0) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void TpMaster::accept_workers(const std::string& bootstrap, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  int missing = world_ - 1;
  while (missing > 0) {
    if (!wait_fd(listen_fd_, POLLIN, deadline)) {
      std::string ranks;
      for (size_t i = 0; i < worker_fd_.size(); ++i)
        if (worker_fd_[i] < 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(i + 1);
      fail("workers of rank " + ranks + " did not connect within " +
           std::to_string(timeout.count()) + " ms");
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    no_delay(fd);
    Hello h{};
    try {
      if (!recv_all(fd, &h, sizeof h, Clock::now() + milliseconds(5000), "a connecting worker"))
        throw Error(ErrorKind::kInternal, "closed");
    } catch (const Error&) {
      ::close(fd);
      continue;  // a stray connection (a port scan, a probe) is not a worker
    }
    if (h.magic != kMagic || h.world != world_ || h.rank < 1 || h.rank >= world_ ||
        worker_fd_[h.rank - 1] >= 0) {
      ::close(fd);
      fail("refused a worker: rank " + std::to_string(h.rank) + " of world " +
           std::to_string(h.world) + " (expected world " + std::to_string(world_) +
           (h.magic != kMagic ? ", other protocol version)" : ")"));
    }
    worker_fd_[h.rank - 1] = fd;
    send_frame(fd, bootstrap, deadline, "worker " + std::to_string(h.rank));
    --missing;
  }
}

void TpMaster::broadcast(const std::string& frame, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (size_t i = 0; i < worker_fd_.size(); ++i)
    send_frame(worker_fd_[i], frame, deadline, "worker " + std::to_string(i + 1));
}

void TpMaster::check_alive() const {
  for (size_t i = 0; i < worker_fd_.size(); ++i) {
    if (worker_fd_[i] < 0) fail("worker " + std::to_string(i + 1) + " is not connected");
    pollfd p{worker_fd_[i], POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) continue;
    // Workers never send after their hello, so readable means closed or reset.
    char c;
    if (::recv(worker_fd_[i], &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0 || (p.revents & POLLHUP))
      fail("worker " + std::to_string(i + 1) + " is gone");
  }
}

void TpMaster::close() {
  for (int& fd : worker_fd_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

TpWorker::TpWorker(const TpEndpoint& master, int rank, int world, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(master.host.c_str(), std::to_string(master.port).c_str(), &hints, &res) != 0)
    fail("cannot resolve master " + master.host);
  for (;;) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0) break;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (Clock::now() >= deadline) {
      ::freeaddrinfo(res);
      fail("cannot reach rank 0 at " + master.host + ":" + std::to_string(master.port));
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ::freeaddrinfo(res);
  no_delay(fd_);
  const Hello h{kMagic, rank, world};
  send_all(fd_, &h, sizeof h, deadline, "rank 0");
  if (!recv_frame(fd_, bootstrap_, deadline, "rank 0")) fail("rank 0 refused this worker");
}

TpWorker::~TpWorker() {
  if (fd_ >= 0) ::close(fd_);
}

TpWorker::Received TpWorker::receive(std::string& frame, milliseconds idle) {
  if (!wait_fd(fd_, POLLIN, Clock::now() + idle)) return Received::kIdle;
  // A frame that has begun arrives whole within a generous bound, or rank 0 is broken.
  return recv_frame(fd_, frame, Clock::now() + milliseconds(30000), "rank 0") ? Received::kFrame
                                                                              : Received::kClosed;
}

}  // namespace tessera
