#include "qwenvl_edge/thread_pool.h"

#include <unistd.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define QWENVL_PAUSE() _mm_pause()
#else
#define QWENVL_PAUSE() std::this_thread::yield()
#endif

namespace qwenvl_edge {
namespace {
constexpr int kSpinIterations = 1 << 14;  // ~1 ms of pause instructions before sleeping
}

ThreadPool::ThreadPool(int threads) : owner_pid_(static_cast<int>(::getpid())) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  if (::getpid() != owner_pid_) {  // a forked child: the threads are not ours to join
    for (auto& t : workers_) t.detach();
    return;
  }
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunk(int index) {
  const int64_t chunks = size();
  const int64_t begin = n_ * index / chunks, end = n_ * (index + 1) / chunks;
  if (begin < end) (*job_)(begin, end);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (workers_.empty() || n <= 1 || ::getpid() != owner_pid_) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  n_ = n;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // seq_cst: ordered before the read of sleeping_ below
  if (sleeping_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);  // a sleeper is either waiting or will see the new generation
    wake_.notify_all();
  }
  run_chunk(0);
  while (pending_.load(std::memory_order_acquire) != 0) QWENVL_PAUSE();
}

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    for (int spin = 0; spin < kSpinIterations && generation_.load(std::memory_order_acquire) == seen; ++spin)
      QWENVL_PAUSE();
    if (generation_.load() == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleeping_.fetch_sub(1);
    }
    seen = generation_.load();
    if (stop_.load()) return;
    run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace qwenvl_edge
