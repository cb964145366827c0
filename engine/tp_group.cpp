#include "engine/tp_group.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "engine/tp_frame.h"

namespace tessera {

using std::chrono::milliseconds;

TpGroup::TpGroup(const TpGroupOptions& options) : options_(options) {
  if (options_.world < 2) throw Error(ErrorKind::kInvalidArgument, "TpGroup needs world >= 2");
  const TpEndpoint bind = TpEndpoint::parse(options_.master);
  master_ = std::make_unique<TpMaster>(bind, options_.world);
  spdlog::info("tensor parallel: rank 0 of {} listening for workers on {}:{}", options_.world,
               bind.host, master_->port());
  if (options_.spawn_local) spawn_workers(master_->port());
}

TpGroup::~TpGroup() {
  shutdown();
}

void TpGroup::spawn_workers(int port) {
  // NVLink multicast stays off (the GPU hosts here require it); workers inherit the setting.
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);
  for (int rank = 1; rank < options_.world; ++rank) {
    const std::string r = std::to_string(rank), w = std::to_string(options_.world);
    const std::string master = "127.0.0.1:" + std::to_string(port);
    const std::string dev = std::to_string(options_.first_device + rank);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(ErrorKind::kInternal, "tensor parallel: fork failed");
    if (pid == 0) {
      // A worker never outlives the server that started it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const char* argv[] = {"tessera",      "worker",    "--rank",   r.c_str(),
                            "--world-size", w.c_str(),   "--master", master.c_str(),
                            "--device",     dev.c_str(), nullptr};
      ::execv("/proc/self/exe", const_cast<char* const*>(argv));
      std::_Exit(127);
    }
    children_.push_back(pid);
  }
}

std::string TpGroup::dead_child() const {
  for (size_t i = 0; i < children_.size(); ++i) {
    int status = 0;
    if (children_[i] > 0 && ::waitpid(children_[i], &status, WNOHANG) == children_[i]) {
      const std::string how = WIFEXITED(status)
                                  ? "exited with " + std::to_string(WEXITSTATUS(status))
                                  : "was killed by signal " + std::to_string(WTERMSIG(status));
      return "worker " + std::to_string(i + 1) + " " + how;
    }
  }
  return "";
}

void TpGroup::start(const std::string& bootstrap) {
  try {
    master_->accept_workers(bootstrap, options_.connect_timeout);
  } catch (const Error& e) {
    const std::string dead = dead_child();
    throw Error(ErrorKind::kInternal,
                dead.empty() ? e.what() : "tensor parallel: " + dead + " during start-up");
  }
  spdlog::info("tensor parallel: {} workers joined", options_.world - 1);
}

void TpGroup::watch(std::function<void(const std::string&)> on_failure) {
  on_failure_ = std::move(on_failure);
  watchdog_ = std::thread([this] {
    while (!stop_.load() && !failed_.load()) {
      std::string why = options_.spawn_local ? dead_child() : "";
      if (why.empty()) {
        try {
          master_->check_alive();
        } catch (const Error& e) {
          why = e.what();
        }
      }
      if (!why.empty() && !stop_.load()) {
        fail(why);
        break;
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
}

void TpGroup::fail(const std::string& why) {
  if (failed_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = why;
  }
  spdlog::error("tensor parallel: {}; the engine cannot run steps any more", why);
  if (on_failure_) on_failure_(why);
}

std::string TpGroup::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

void TpGroup::send_step(std::span<const std::pair<int32_t, int32_t>> copies,
                        const StepLayout& layout) {
  if (failed_.load())
    throw Error(ErrorKind::kInternal, "tensor parallel group failed: " + failure());
  TpStepFrame f;
  f.copies.assign(copies.begin(), copies.end());
  f.layout = layout;
  try {
    master_->broadcast(encode_frame(f), options_.step_send_timeout);
  } catch (const Error& e) {
    fail(e.what());
    throw;
  }
}

void TpGroup::shutdown() {
  if (stop_.exchange(true)) return;
  if (watchdog_.joinable()) watchdog_.join();
  if (master_ && !failed_.load()) {
    try {
      TpStepFrame f;
      f.kind = TpStepFrame::Kind::kShutdown;
      master_->broadcast(encode_frame(f), milliseconds(2000));
    } catch (const Error&) {
    }
  }
  if (master_) master_->close();
  // Local workers get a moment to leave cleanly, then are killed.
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
  for (int& pid : children_) {
    while (pid > 0) {
      const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) {
        pid = -1;
      } else if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
      } else {
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  }
}

}  // namespace tessera
