// Package sys holds the raw Linux interfaces sandlock uses that
// golang.org/x/sys/unix does not wrap: seccomp user notification structs and
// ioctls, the seccomp(2) call itself, and per-thread capability calls.
// Every function here is a thin, allocation-free wrapper around one syscall.
package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompData mirrors struct seccomp_data.
type SeccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// SeccompNotif mirrors struct seccomp_notif (80 bytes).
type SeccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  SeccompData
}

// SeccompNotifResp mirrors struct seccomp_notif_resp (24 bytes).
type SeccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// SeccompNotifAddfd mirrors struct seccomp_notif_addfd (24 bytes).
type SeccompNotifAddfd struct {
	ID         uint64
	Flags      uint32
	Srcfd      uint32
	Newfd      uint32
	NewfdFlags uint32
}

// Seccomp constants not (or not portably) in x/sys/unix.
const (
	SECCOMP_SET_MODE_FILTER         = 1
	SECCOMP_GET_ACTION_AVAIL        = 2
	SECCOMP_GET_NOTIF_SIZES         = 3
	FilterFlagNewListener           = 1 << 3
	FilterFlagWaitKillable          = 1 << 5
	UserNotifFlagContinue           = 1
	UserNotifFdSyncWakeUp           = 1
	AddfdFlagSetfd                  = 1 << 0
	AddfdFlagSend                   = 1 << 1
	ioctlNotifRecv                  = 0xc0502100
	ioctlNotifSend                  = 0xc0182101
	ioctlNotifIDValid               = 0x40082102
	ioctlNotifAddfd                 = 0x40182103
	ioctlNotifSetFlags              = 0x40082104
	RetUserNotif             uint32 = 0x7fc00000
)

// SeccompSetFilter installs prog on the calling thread (no TSYNC) and
// returns the listener fd when flags ask for one.
func SeccompSetFilter(flags uintptr, prog []unix.SockFilter) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SeccompActionAvail reports whether the kernel knows the filter action.
func SeccompActionAvail(action uint32) bool {
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	return e == 0
}

// WaitReadableHoldingP blocks until fd is readable (or hung up), without
// telling the Go scheduler: the calling goroutine keeps its P while it
// waits, so that the wake-up that ends the wait goes straight back to Go
// code, with no P to reacquire and no sysmon to wake. A signal (the
// runtime's preemption signal included) ends the wait with EINTR, which
// is what lets a stop-the-world proceed: the caller must return to Go code
// on EINTR, never retry in a loop that makes no call. Only one goroutine
// in the process may wait this way (it takes a P out of circulation).
//
// Once no task uses the listener's filter any more, it returns at once
// (POLLHUP), as does the RECV that follows (ENOENT): see ListenerHungUp.
//
// A readable wake (an eventfd, or -1 for none) ends the wait too: the
// waiter's owner can wake it without knowing its thread.
func WaitReadableHoldingP(fd, wake int) error {
	pfd := [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	n := uintptr(1)
	if wake >= 0 {
		n = 2
	}
	_, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), n, 0, 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ListenerHungUp reports whether no task uses the listener's filter any
// more: the kernel then reports POLLHUP, and no task can come to use the
// filter again, so there is nothing left to receive.
func ListenerHungUp(fd int) bool {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	var ts unix.Timespec
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return e == 0 && n == 1 && pfd.Revents&unix.POLLIN == 0 && pfd.Revents&unix.POLLHUP != 0
}

// NotifRecv blocks until a notification arrives on the listener and fills n.
// n must be zeroed by the caller (the kernel rejects a dirty buffer).
func NotifRecv(fd int, n *SeccompNotif) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNotifRecv, uintptr(unsafe.Pointer(n)))
	if e != 0 {
		return e
	}
	return nil
}

// NotifSend answers a notification.
func NotifSend(fd int, r *SeccompNotifResp) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNotifSend, uintptr(unsafe.Pointer(r)))
	if e != 0 {
		return e
	}
	return nil
}

// NotifIDValid reports whether notification id is still pending: the task
// has not been killed or interrupted since it was received, so what was read
// from its memory or /proc belongs to it.
func NotifIDValid(fd int, id uint64) bool {
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), ioctlNotifIDValid, uintptr(unsafe.Pointer(&id)))
	return e == 0
}

// NotifAddfd installs srcfd into the notifying task; with AddfdFlagSend it
// also answers the notification with the new fd number.
func NotifAddfd(fd int, a *SeccompNotifAddfd) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNotifAddfd, uintptr(unsafe.Pointer(a)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// NotifSetFlags sets SECCOMP_USER_NOTIF_FD_* flags on the listener.
func NotifSetFlags(fd int, flags uint64) error {
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), ioctlNotifSetFlags, uintptr(flags))
	if e != 0 {
		return e
	}
	return nil
}

// PidfdInfo is the start of struct pidfd_info (Linux 6.13+).
type PidfdInfo struct {
	Mask     uint64
	CgroupID uint64
	Pid      uint32
	Tgid     uint32
	Ppid     uint32
	rest     [11]uint32
}

const (
	pidfdGetInfo = 0xC040FF0B // _IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info), 64 bytes
	// PidfdThread is PIDFD_THREAD (6.9+): a pidfd for a thread that is
	// not a thread-group leader.
	PidfdThread = unix.O_EXCL
)

// PidfdGetInfo asks the kernel who the pidfd's task is: its pid, thread
// group and parent, without reading /proc. Kernels before 6.13 answer
// ENOTTY.
func PidfdGetInfo(pidfd int, info *PidfdInfo) error {
	*info = PidfdInfo{Mask: 1} // PIDFD_INFO_PID
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetInfo, uintptr(unsafe.Pointer(info)))
	if e != 0 {
		return e
	}
	return nil
}
