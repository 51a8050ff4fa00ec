package sys

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
