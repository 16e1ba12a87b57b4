// One pool of worker threads per decoder. parallel_for cuts [0, n) into chunks that the calling thread
// and the workers claim one at a time from a shared counter: a thread the OS has descheduled (a laptop
// always runs something else) holds up only the chunk it is in, and the others take the rest. A static
// split, one part per thread, made every section wait for its slowest thread (benchmarks/
// NOTES_background_load.md).
//
// Chunks are kChunkAlign units (more only past 4095 chunks), small enough that the threads finish a
// section within microseconds of each other. Results do not depend on the thread count or on which
// thread ran what: each unit is computed by one thread, and chunks start at multiples of kChunkAlign, so
// a kernel that blocks its range from its start by 2, 4 or 8 units (lm_head rows by four, prefill tiles
// by eight) sees the same blocks however [0, n) is cut. A pool of 1, or a job of one chunk, runs inline.
//
// Waiting is bounded spinning, then sleeping on a condition variable: a decode step issues ~200 sections
// microseconds apart, too close for a futex wake-up each (~0.1 ms on a VM), but a spinning thread takes
// a core from whatever else runs. An idle pool burns no CPU. When the caller finds itself waiting for a
// descheduled peer (a stall), it runs the next sections alone for a spell that grows while stalls keep
// coming: with a core busy elsewhere, the threads then stop queueing behind each other.
//
// A parallel_for issued while one is running on the pool (nested in fn, or from another thread) runs
// inline; so does one in a forked child, which has the pool but none of its threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace qwenvl_edge {

class ThreadPool {
 public:
  // threads - 1 workers. If one cannot be started, those that were are stopped and joined and
  // std::runtime_error says why.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(state_->workers.size()) + 1; }
  // fn(begin, end) on disjoint chunks covering [0, n); returns when all are done. fn must not throw.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  static constexpr int64_t kChunkAlign = 8;
  using Clock = std::chrono::steady_clock;

 private:
  // Everything the workers share, on the heap so that a forked child can leave it untouched: its
  // condition variables may list the parent's sleeping workers as waiters, and destroying one then
  // blocks for good.
  struct State {
    std::vector<std::thread> workers;
    std::mutex mutex;
    std::condition_variable posted;  // a job was published, or stop
    std::condition_variable done;    // the last chunk of the caller's job finished
    // The current job in one word, so that a claim cannot mix two jobs: generation (bits 24 and up),
    // next unclaimed chunk (bits 12-23), number of chunks (bits 0-11).
    std::atomic<uint64_t> job{0};
    // The job's function and split, written before the job is published and read after a successful
    // claim, which the job cannot outlive.
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0, chunk = 0;
    std::atomic<int64_t> finished{0};  // chunks of the current job done
    std::atomic<int> sleeping{0};      // workers blocked on posted
    std::atomic<bool> caller_sleeping{false};
    std::atomic<bool> running{false};  // a parallel_for is in progress
    std::atomic<bool> stop{false};
    // The caller's alone: touched only by the thread that holds `running`.
    Clock::time_point solo_until{};  // run inline until then, after a stall
    Clock::duration solo_for{};      // the length of the last such spell
  };

  void work();
  // Claims and runs chunks of job `generation` until none is left; returns how many it ran.
  int64_t run_chunks(uint64_t generation);
  void wait_finished(int64_t chunks);
  void stop_workers();

  int owner_pid_;
  std::unique_ptr<State> state_;
};

}  // namespace qwenvl_edge
