package sys

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DropAllCapsThread empties every capability set of the calling thread:
// bounding (needs CAP_SETPCAP, which a root thread has), ambient, then
// permitted, effective and inheritable with capset(2). Capabilities are
// per-thread in Linux, so only the calling thread (and what it forks) is
// affected; the caller must hold it with runtime.LockOSThread.
//
// The bounding set is emptied by dropping capabilities 0, 1, ... until the
// kernel answers EINVAL past its last one (no need to read
// /proc/sys/kernel/cap_last_cap, which would cost a file and, through os,
// the runtime's network poller at every launch).
func DropAllCapsThread() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	for c := 0; c < 64; c++ {
		_, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0, 0)
		if e == unix.EINVAL {
			break // past the last capability
		}
		if e != 0 {
			return e
		}
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return e
	}
	data = [2]unix.CapUserData{}
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	return nil
}

// HasAnyCap reports whether the calling thread holds any permitted or
// bounding capability worth dropping.
func HasAnyCap() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return true
	}
	if data[0].Permitted|data[1].Permitted|data[0].Inheritable|data[1].Inheritable != 0 {
		return true
	}
	// The bounding set matters too: a uid-0 exec would regain what it holds.
	r, _, _ := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, 0, 0, 0, 0, 0)
	return r == 1 && os.Geteuid() == 0
}
