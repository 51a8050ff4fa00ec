package sys

import (
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
