// The tensor-parallel control channel over real loopback TCP: bootstrap, per-step frames in
// order, and the faults rank 0 must see (a worker that dies, one that never comes, a wrong
// world size), plus the step frame's round trip and its rejection of corrupt bytes.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "common/error.h"
#include "engine/tp_channel.h"
#include "engine/tp_frame.h"

using namespace tessera;
using std::chrono::milliseconds;

namespace {

StepLayout sample_layout(int seed) {
  StepLayout l;
  l.tokens = {seed, seed + 1, seed + 2};
  l.positions = {0, 1, 7};
  l.slot_mapping = {16, 17, 40};
  l.query_start = {0, 2, 3};
  l.context_len = {2, 8};
  l.block_table_start = {0, 1, 2};
  l.block_tables = {1, 2};
  l.logit_rows = {1, 2};
  l.block_size = 16;
  return l;
}

}  // namespace

TEST_CASE("tp frame: round trip and corrupt bytes", "[tp]") {
  TpStepFrame f;
  f.copies = {{3, 4}, {5, 6}};
  f.layout = sample_layout(11);
  const TpStepFrame g = decode_frame(encode_frame(f));
  CHECK(g.kind == TpStepFrame::Kind::kStep);
  CHECK(g.copies == f.copies);
  CHECK(g.layout.tokens == f.layout.tokens);
  CHECK(g.layout.slot_mapping == f.layout.slot_mapping);
  CHECK(g.layout.block_tables == f.layout.block_tables);
  CHECK(g.layout.logit_rows == f.layout.logit_rows);
  CHECK(g.layout.block_size == 16);
  const std::string bytes = encode_frame(f);
  for (size_t cut : {size_t{0}, size_t{3}, bytes.size() / 2, bytes.size() - 1})
    CHECK_THROWS_AS(decode_frame(bytes.substr(0, cut)), Error);
  TpStepFrame bad = f;
  bad.layout.logit_rows = {9};
  CHECK_THROWS_AS(decode_frame(encode_frame(bad)), Error);
}

TEST_CASE("tp channel: bootstrap then frames reach every worker in order", "[tp]") {
  TpMaster master({"127.0.0.1", 0}, 3);
  std::atomic<int> ok{0};
  std::vector<std::thread> workers;
  for (int rank = 1; rank < 3; ++rank)
    workers.emplace_back([&, rank] {
      TpWorker w({"127.0.0.1", master.port()}, rank, 3, milliseconds(5000));
      if (w.bootstrap() != "nccl-id-and-model") return;
      std::string frame;
      for (int step = 0; step < 100; ++step) {
        if (w.receive(frame, milliseconds(5000)) != TpWorker::Received::kFrame) return;
        if (decode_frame(frame).layout.tokens[0] != step) return;
      }
      // rank 0 closes: orderly end
      if (w.receive(frame, milliseconds(5000)) != TpWorker::Received::kClosed) return;
      ++ok;
    });
  master.accept_workers("nccl-id-and-model", milliseconds(5000));
  for (int step = 0; step < 100; ++step) {
    TpStepFrame f;
    f.layout = sample_layout(step);
    master.broadcast(encode_frame(f), milliseconds(1000));
  }
  master.check_alive();
  master.close();  // orderly end: the workers' next receive returns false
  for (auto& t : workers) t.join();
  CHECK(ok == 2);
}

TEST_CASE("tp channel: faults are errors, not hangs", "[tp]") {
  SECTION("a worker that never connects") {
    TpMaster master({"127.0.0.1", 0}, 2);
    CHECK_THROWS_WITH(master.accept_workers("x", milliseconds(300)),
                      Catch::Contains("rank 1 did not connect"));
  }
  SECTION("a worker of another world size") {
    TpMaster master({"127.0.0.1", 0}, 2);
    std::atomic<bool> refused{false};
    std::thread w([&] {  // Catch2 assertions belong to the test's own thread
      try {
        TpWorker({"127.0.0.1", master.port()}, 1, 4, milliseconds(2000));
      } catch (const Error&) {
        refused = true;
      }
    });
    CHECK_THROWS_WITH(master.accept_workers("x", milliseconds(2000)),
                      Catch::Contains("expected world 2"));
    w.join();
    CHECK(refused);
  }
  SECTION("a worker that dies mid-run") {
    TpMaster master({"127.0.0.1", 0}, 2);
    std::thread w([&] { TpWorker gone({"127.0.0.1", master.port()}, 1, 2, milliseconds(2000)); });
    master.accept_workers("x", milliseconds(2000));
    w.join();  // the worker's socket is closed now
    std::this_thread::sleep_for(milliseconds(50));
    CHECK_THROWS_WITH(master.check_alive(), Catch::Contains("worker 1 is gone"));
  }
  SECTION("rank 0 idle, then gone") {
    auto master = std::make_unique<TpMaster>(TpEndpoint{"127.0.0.1", 0}, 2);
    std::thread m([&] { master->accept_workers("x", milliseconds(2000)); });
    TpWorker w({"127.0.0.1", master->port()}, 1, 2, milliseconds(2000));
    m.join();
    std::string frame;
    CHECK(w.receive(frame, milliseconds(100)) == TpWorker::Received::kIdle);
    master.reset();
    CHECK(w.receive(frame, milliseconds(2000)) == TpWorker::Received::kClosed);
  }
  SECTION("no master at all") {
    CHECK_THROWS_WITH(TpWorker({"127.0.0.1", 1}, 1, 2, milliseconds(300)),
                      Catch::Contains("cannot reach rank 0"));
  }
  CHECK_THROWS_AS(TpEndpoint::parse("nohost"), Error);
  CHECK_THROWS_AS(TpEndpoint::parse("h:99999"), Error);
  CHECK(TpEndpoint::parse("10.0.0.2:29500").port == 29500);
}
