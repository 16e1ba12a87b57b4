// One pool of worker threads per decoder. parallel_for splits [0, n) into one contiguous chunk per
// thread; the calling thread runs chunk 0, so a pool of 1 runs everything inline.
//
// A decode step issues ~200 parallel sections about a millisecond apart, so idle workers spin for
// about a millisecond before they sleep on a condition variable (a futex wake-up costs tens of
// microseconds each time); an idle pool sleeps and burns no CPU. In a forked child (which has the
// pool but none of its threads) parallel_for runs everything on the calling thread instead of waiting.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qwenvl_edge {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) on disjoint chunks covering [0, n); returns when all are done. fn must not throw.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void work(int index);
  void run_chunk(int index);

  int owner_pid_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  std::atomic<uint64_t> generation_{0};  // bumped once per parallel_for
  std::atomic<int> pending_{0};          // workers still running the current job
  std::atomic<int> sleeping_{0};         // workers blocked on wake_
  std::atomic<bool> stop_{false};
};

}  // namespace qwenvl_edge
