// ThreadSanitizer annotations for Debian's abseil synchronization primitives, linked into every
// binary of a DERMA_SANITIZE=thread build (top CMakeLists.txt). Test-build only.
//
// Why: all of derma's shared state is guarded by absl::Mutex, and Debian's libabsl is not
// built with -fsanitize=thread, so ThreadSanitizer cannot see Mutex, CondVar, Notification or
// BlockingCounter synchronize anything and reports every guarded field as a race (and every
// absl::Status freed by another thread than the one that last read it). This library
// is loaded ahead of libabsl_synchronization.so, so its definitions of those member functions
// interpose the library's for every caller (our code, and gRPC's own absl::Mutex uses). Each
// one calls the real function (looked up with dlsym(RTLD_NEXT)) and tells ThreadSanitizer what
// it did, with the mutex annotations of <sanitizer/tsan_interface.h>: the same model abseil
// itself uses when it is built with ThreadSanitizer.
//
// While the real function runs, the thread's memory accesses are ignored: absl::Mutex
// evaluates waiters' Conditions (our code, reading guarded state) inside Unlock, Await and the
// LockWhen family, at points the wrapper cannot annotate. This hides races inside Condition
// functions only; they read state that the mutex guards.
//
// Limits: Await and CondVar::Wait assume the mutex is held in writer mode (derma takes no
// reader locks); Notification::HasBeenNotified() is inline and reads an atomic the library
// wrote, so a thread that only polls it (instead of waiting) gets no happens-before edge.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/base/options.h"
#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();

namespace {

#define DERMA_STRINGIFY_INNER(x) #x
#define DERMA_STRINGIFY(x) DERMA_STRINGIFY_INNER(x)
constexpr char kAbslNamespace[] = DERMA_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);

// The library's definition of absl::<inline namespace>::<suffix> (an Itanium-mangled name
// without its "_ZN4absl<n><namespace>" prefix); `konst` for const member functions.
template <typename Fn>
Fn Real(const char* suffix, bool konst = false) {
  const std::string name = std::string(konst ? "_ZNK4absl" : "_ZN4absl") +
                           std::to_string(sizeof(kAbslNamespace) - 1) + kAbslNamespace + suffix;
  void* real = dlsym(RTLD_NEXT, name.c_str());
  if (real == nullptr) {
    std::fprintf(stderr, "absl_tsan_annotations: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(real);
}

// Ignores the thread's memory accesses for its lifetime (see the file comment).
class IgnoreAccesses {
 public:
  IgnoreAccesses() { __tsan_ignore_thread_begin(); }
  ~IgnoreAccesses() { __tsan_ignore_thread_end(); }
  IgnoreAccesses(const IgnoreAccesses&) = delete;
  IgnoreAccesses& operator=(const IgnoreAccesses&) = delete;
};

// Runs `f` at the end of the scope.
template <typename F>
class AtExit {
 public:
  explicit AtExit(F f) : f_(f) {}
  ~AtExit() { f_(); }
  AtExit(const AtExit&) = delete;
  AtExit& operator=(const AtExit&) = delete;

 private:
  F f_;
};

// Some wrapped functions call others through the library's PLT (LockWhenWithTimeout calls
// LockWhenWithDeadline, CondVar::WaitWithTimeout calls WaitWithDeadline): only the outermost
// call on a thread is annotated.
thread_local int wrapped_depth = 0;

class Outermost {
 public:
  Outermost() : outermost_(wrapped_depth++ == 0) {}
  ~Outermost() { --wrapped_depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  explicit operator bool() const { return outermost_; }

 private:
  const bool outermost_;
};

// real(args...) acquires `mu` in mode `flags` (blocking, or until a condition or timeout).
template <typename Fn, typename... Args>
auto AsLock(void* mu, unsigned flags, Fn real, Args&&... args) {
  Outermost outermost;
  if (!outermost) return real(std::forward<Args>(args)...);
  __tsan_mutex_pre_lock(mu, flags);
  AtExit post([mu, flags] { __tsan_mutex_post_lock(mu, flags, 0); });
  IgnoreAccesses ignore;  // a LockWhen evaluates its Condition before the lock is annotated
  return real(std::forward<Args>(args)...);
}

// real(args...) releases `mu` from mode `flags`.
template <typename Fn, typename... Args>
auto AsUnlock(void* mu, unsigned flags, Fn real, Args&&... args) {
  Outermost outermost;
  if (!outermost) return real(std::forward<Args>(args)...);
  __tsan_mutex_pre_unlock(mu, flags);
  AtExit post([mu, flags] { __tsan_mutex_post_unlock(mu, flags); });
  IgnoreAccesses ignore;  // Unlock evaluates waiters' Conditions
  return real(std::forward<Args>(args)...);
}

// real(args...) releases the writer-held `mu` while it waits and holds it again on return
// (Await, CondVar::Wait).
template <typename Fn, typename... Args>
auto AsWait(void* mu, Fn real, Args&&... args) {
  Outermost outermost;
  if (!outermost) return real(std::forward<Args>(args)...);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  AtExit relock([mu] {
    __tsan_mutex_pre_lock(mu, 0);
    __tsan_mutex_post_lock(mu, 0, 0);
  });
  IgnoreAccesses ignore;
  return real(std::forward<Args>(args)...);
}

}  // namespace

namespace absl {

using CondFn = void (*)(Mutex*, const Condition&);
using CondTimeoutFn = bool (*)(Mutex*, const Condition&, Duration);
using CondDeadlineFn = bool (*)(Mutex*, const Condition&, Time);
constexpr unsigned kRead = __tsan_mutex_read_lock;

Mutex::~Mutex() {
  static const auto real = Real<void (*)(Mutex*)>("5MutexD1Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  AsLock(this, 0, real, this);
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  AsLock(this, kRead, real, this);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, locked ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed, 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  AsUnlock(this, 0, real, this);
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  AsUnlock(this, kRead, real, this);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<CondFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  AsLock(this, 0, real, this, cond);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<CondFn>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  AsLock(this, kRead, real, this, cond);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<CondTimeoutFn>("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AsLock(this, 0, real, this, cond, timeout);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<CondDeadlineFn>("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AsLock(this, 0, real, this, cond, deadline);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<CondTimeoutFn>("5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AsLock(this, kRead, real, this, cond, timeout);
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<CondDeadlineFn>("5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AsLock(this, kRead, real, this, cond, deadline);
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<CondFn>("5Mutex5AwaitERKNS0_9ConditionE");
  AsWait(this, real, this, cond);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<CondTimeoutFn>("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AsWait(this, real, this, cond, timeout);
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<CondDeadlineFn>("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AsWait(this, real, this, cond, deadline);
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  AsWait(mu, real, this, mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return AsWait(mu, real, this, mu, timeout);
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return AsWait(mu, real, this, mu, deadline);
}

// Notification and BlockingCounter synchronize through atomics inside the library (a waiter
// that finds the notification already given takes no lock): release and acquire on the
// object's address.
void Notification::Notify() {
  static const auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real =
      Real<void (*)(const Notification*)>("12Notification19WaitForNotificationEv", true);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool BlockingCounter::DecrementCount() {
  static const auto real = Real<bool (*)(BlockingCounter*)>("15BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  static const auto real = Real<void (*)(BlockingCounter*)>("15BlockingCounter4WaitEv");
  real(this);
  __tsan_acquire(this);
}

// absl::Status copies share one representation, freed by whichever thread drops the last
// reference, in libabsl_status: model the decrement as the acquire-release it is, so the
// freeing thread is ordered after every thread that used and released a copy.
void Status::UnrefNonInlined(uintptr_t rep) {
  static const auto real = Real<void (*)(uintptr_t)>("6Status15UnrefNonInlinedEm");
  void* address = reinterpret_cast<void*>(rep);
  __tsan_release(address);
  __tsan_acquire(address);
  real(rep);
}

}  // namespace absl
