#include "qwenvl_edge/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define QWENVL_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define QWENVL_PAUSE() asm volatile("yield")
#else
#define QWENVL_PAUSE() std::this_thread::yield()
#endif

namespace qwenvl_edge {
namespace {

// How long a thread spins before it sleeps: a worker waiting for the next section, the caller waiting for
// the others' last chunks. Longer than the serial gap between two sections of a decode step (a few
// microseconds) and than most chunks of one (tens), far shorter than a scheduler's time slice (~3 ms):
// with a core busy elsewhere, a thread that waits longer gives its core up to a peer that has work.
constexpr std::chrono::microseconds kWorkerSpin{50};
constexpr std::chrono::microseconds kCallerSpin{50};

constexpr int kCountBits = 12;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
constexpr int kGenerationShift = 2 * kCountBits;
constexpr uint64_t kNextOne = uint64_t{1} << kCountBits;
constexpr int64_t kMaxChunks = static_cast<int64_t>(kCountMask);

uint64_t generation_of(uint64_t job) { return job >> kGenerationShift; }
int64_t next_of(uint64_t job) { return static_cast<int64_t>((job >> kCountBits) & kCountMask); }
int64_t chunks_of(uint64_t job) { return static_cast<int64_t>(job & kCountMask); }

// Units per chunk for n units over `threads`: about kChunksPerThread chunks each, a multiple of kChunkAlign.
int64_t chunk_units(int64_t n, int threads) {
  const int64_t align = ThreadPool::kChunkAlign;
  const int64_t chunks = std::min<int64_t>(int64_t{threads} * ThreadPool::kChunksPerThread, kMaxChunks);
  const int64_t units = (n + chunks - 1) / chunks;
  return (units + align - 1) / align * align;
}

// Spins until ready() or the limit passes; returns ready().
template <typename Ready>
bool spin_until(Ready ready, std::chrono::microseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      QWENVL_PAUSE();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) : owner_pid_(static_cast<int>(::getpid())), state_(std::make_unique<State>()) {
  if (threads < 1) throw std::invalid_argument("a thread pool needs at least 1 thread, got " + std::to_string(threads));
  state_->workers.reserve(static_cast<size_t>(threads - 1));
  for (int i = 1; i < threads; ++i) {
    try {
      state_->workers.emplace_back([this] { work(); });
    } catch (const std::system_error& e) {
      stop_workers();
      throw std::runtime_error("cannot start thread " + std::to_string(i + 1) + " of " + std::to_string(threads) +
                               ": " + e.what() + " (ask for fewer threads, or raise the memory or process limit)");
    }
  }
}

ThreadPool::~ThreadPool() {
  if (::getpid() != owner_pid_) {  // a forked child: the threads and their waits are the parent's
    (void)state_.release();
    return;
  }
  stop_workers();
}

void ThreadPool::stop_workers() {
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stop.store(true);
  }
  s.posted.notify_all();
  for (auto& t : s.workers) t.join();
  s.workers.clear();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  State& s = *state_;
  if (n <= 0) return;
  const int64_t chunk = chunk_units(n, size());
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1 || s.workers.empty() || ::getpid() != owner_pid_ || s.running.exchange(true)) {
    fn(0, n);
    return;
  }
  s.fn = &fn;
  s.n = n;
  s.chunk = chunk;
  s.finished.store(0, std::memory_order_relaxed);
  const uint64_t generation = generation_of(s.job.load(std::memory_order_relaxed)) + 1;
  s.job.store(generation << kGenerationShift | static_cast<uint64_t>(chunks));  // seq_cst: before sleeping is read
  if (s.sleeping.load() > 0) {
    std::lock_guard<std::mutex> lock(s.mutex);  // a sleeper is either waiting or will see the new job
    s.posted.notify_all();
  }
  run_chunks(generation);
  wait_finished(chunks);
  s.running.store(false, std::memory_order_release);
}

void ThreadPool::run_chunks(uint64_t generation) {
  State& s = *state_;
  uint64_t job = s.job.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(job) != generation || next_of(job) >= chunks_of(job)) return;
    if (!s.job.compare_exchange_weak(job, job + kNextOne, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    // Claimed: the job cannot finish, nor the next be published, before this chunk is counted below.
    const int64_t begin = next_of(job) * s.chunk, end = std::min(s.n, begin + s.chunk);
    (*s.fn)(begin, end);
    if (s.finished.fetch_add(1) + 1 == chunks_of(job) && s.caller_sleeping.load()) {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.done.notify_one();
    }
    job = s.job.load(std::memory_order_acquire);
  }
}

void ThreadPool::wait_finished(int64_t chunks) {
  State& s = *state_;
  auto all_done = [&] { return s.finished.load() == chunks; };
  if (spin_until(all_done, kCallerSpin)) return;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.caller_sleeping.store(true);  // seq_cst: a worker finishing the last chunk sees it or we see its count
  s.done.wait(lock, all_done);
  s.caller_sleeping.store(false);
}

void ThreadPool::work() {
  State& s = *state_;
  uint64_t seen = 0;  // the generation of the last job looked at
  auto posted = [&] { return s.stop.load() || generation_of(s.job.load()) != seen; };
  for (;;) {
    if (!spin_until(posted, kWorkerSpin)) {
      std::unique_lock<std::mutex> lock(s.mutex);
      s.sleeping.fetch_add(1);  // seq_cst: the caller publishing a job sees it or we see the job
      s.posted.wait(lock, posted);
      s.sleeping.fetch_sub(1);
    }
    if (s.stop.load()) return;
    seen = generation_of(s.job.load(std::memory_order_acquire));
    run_chunks(seen);
  }
}

}  // namespace qwenvl_edge
