package sys

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sigaction is the kernel's struct sigaction as rt_sigaction(2) takes it on
// x86_64 and arm64 (the mask is the kernel's 64-bit sigset).
type Sigaction struct {
	Handler, Flags, Restorer, Mask uint64
}

// SaRestart is SA_RESTART (the same on x86_64 and arm64).
const SaRestart = 0x10000000

// RtSigaction installs act (if not nil) for sig and stores the previous
// action in old (if not nil), with a raw syscall.
func RtSigaction(sig int, act, old *Sigaction) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	return e
}

// Futex operations (private to the process).
const (
	futexWaitPrivate = 128 // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
	futexWakePrivate = 129 // FUTEX_WAKE | FUTEX_PRIVATE_FLAG
)

// FutexWait sleeps while *w == val, until FutexWake (or a signal or a
// spurious wake-up: callers re-check). It is a blocking syscall the Go
// runtime knows about (it may hand the thread's P to another).
func FutexWait(w *atomic.Uint32, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitPrivate, uintptr(val), 0, 0, 0)
}

// FutexWake wakes every thread in FutexWait on w, with a raw syscall: the
// Go scheduler plays no part, so a thread that must not allocate (one
// confined with the filter) can call it.
func FutexWake(w *atomic.Uint32) {
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakePrivate, 1<<30, 0, 0, 0)
}
