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

using Clock = ThreadPool::Clock;

// How long a thread spins before it sleeps: a worker waiting for the next section, the caller waiting for
// the others' last chunks. Longer than the serial gap between two sections of a decode step (a few
// microseconds) and than most chunks of one (tens), far shorter than a scheduler's time slice (~3 ms):
// with a core busy elsewhere, a thread that waits longer gives its core up to a peer that has work.
constexpr std::chrono::microseconds kWorkerSpin{50};
constexpr std::chrono::microseconds kCallerSpin{50};

// A stall: the caller, out of chunks, waited for a peer's last one longer than two of its own chunks took
// plus kStallSlack (a futex wake-up is ~0.1 ms on a VM; a descheduled thread is gone for milliseconds).
// The caller then runs the next sections alone for a spell: kSoloMin after an isolated stall, twice the
// last spell (up to kSoloMax) when stalls keep coming, as when a core is busy for good.
constexpr std::chrono::microseconds kStallSlack{500};
constexpr std::chrono::milliseconds kSoloMin{5};
constexpr std::chrono::milliseconds kSoloMax{200};

constexpr int kCountBits = 12;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
constexpr int kGenerationShift = 2 * kCountBits;
constexpr uint64_t kNextOne = uint64_t{1} << kCountBits;
constexpr int64_t kMaxChunks = static_cast<int64_t>(kCountMask);

uint64_t generation_of(uint64_t job) { return job >> kGenerationShift; }
int64_t next_of(uint64_t job) { return static_cast<int64_t>((job >> kCountBits) & kCountMask); }
int64_t chunks_of(uint64_t job) { return static_cast<int64_t>(job & kCountMask); }

// Units per chunk: kChunkAlign, or the least multiple of it that keeps n within kMaxChunks chunks.
int64_t chunk_units(int64_t n) {
  const int64_t align = ThreadPool::kChunkAlign;
  const int64_t units = (n + kMaxChunks - 1) / kMaxChunks;
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
  const int64_t chunk = chunk_units(n);
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1 || s.workers.empty() || ::getpid() != owner_pid_ || s.running.exchange(true)) {
    fn(0, n);
    return;
  }
  const auto start = Clock::now();
  if (start < s.solo_until) {
    fn(0, n);
    s.running.store(false, std::memory_order_release);
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
  const int64_t ran = run_chunks(generation);
  const auto out_of_chunks = Clock::now();
  wait_finished(chunks);
  const auto end = Clock::now();
  if (end - out_of_chunks > 2 * (out_of_chunks - start) / std::max<int64_t>(ran, 1) + kStallSlack) {
    const bool again = end - s.solo_until < 2 * s.solo_for;  // soon after the last spell ended
    s.solo_for = again ? std::min<Clock::duration>(2 * s.solo_for, kSoloMax) : Clock::duration(kSoloMin);
    s.solo_until = end + s.solo_for;
  }
  s.running.store(false, std::memory_order_release);
}

int64_t ThreadPool::run_chunks(uint64_t generation) {
  State& s = *state_;
  int64_t ran = 0;
  uint64_t job = s.job.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(job) != generation || next_of(job) >= chunks_of(job)) return ran;
    if (!s.job.compare_exchange_weak(job, job + kNextOne, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    // Claimed: the job cannot finish, nor the next be published, before this chunk is counted below.
    const int64_t begin = next_of(job) * s.chunk, end = std::min(s.n, begin + s.chunk);
    (*s.fn)(begin, end);
    ++ran;
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
