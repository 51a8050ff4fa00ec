package confine

import (
	"fmt"
	"runtime"
	"unsafe"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

// VirtualHostname gives the calling thread a mount and a UTS namespace of
// its own in which the hostname is name and /etc/hostname is a read-only
// file holding name and a newline; whatever the thread forks inherits both.
// The kernel then answers uname and opens of /etc/hostname itself, and the
// filter needs to send neither to the supervisor: every open of every
// process would otherwise be a notification (two per exec of a dynamic
// binary, hundreds per compiler run).
//
// The thread must be locked to itself for good: it is never handed back to
// the Go scheduler. The namespaces need CAP_SYS_ADMIN (sandlock run as
// root, as build farms often are), /etc/hostname must exist and /proc be
// mounted: the file is /proc/sys/kernel/hostname, which shows the reader's
// UTS name, bound read-only over it. When any step fails the caller keeps
// the supervisor's virtualization, which works anywhere (its filter
// notifies uname and open, so a half-made namespace changes nothing the
// command sees). The new mount namespace is a slave of the host's: mounts
// made on the host later still appear inside, nothing made inside leaks
// out.
//
// It returns an O_PATH descriptor of the file, for AllowReadFile (the
// file must stay readable when /etc is not).
func VirtualHostname(name string) (fd int, err error) {
	if len(name) == 0 || len(name) > 64 {
		return -1, fmt.Errorf("hostname %q: 1 to 64 bytes", name)
	}
	// Raw syscalls: the calling thread keeps its P. Made the Go way, a
	// syscall as slow as unshare lets sysmon take the P away; a traced
	// launch then waited a millisecond to get one back behind the
	// supervisor's spinning worker.
	if _, e := rawCall(unix.SYS_UNSHARE, unix.CLONE_NEWNS|unix.CLONE_NEWUTS); e != 0 {
		return -1, fmt.Errorf("unshare: %w", e)
	}
	if _, e := rawCall(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&sys.CEmpty[0])), uintptr(unsafe.Pointer(&sys.CRoot[0])),
		uintptr(unsafe.Pointer(&sys.CEmpty[0])), unix.MS_REC|unix.MS_SLAVE); e != 0 {
		return -1, fmt.Errorf("make / a slave mount: %w", e)
	}
	// The file: the kernel's own view of the hostname, which shows the
	// reader's UTS namespace, bound read-only over /etc/hostname. No file
	// to create (a tmpfs for it cost 0.2 ms of launch), nothing to clean.
	if _, e := rawCall(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&sys.CProcHostname[0])), uintptr(unsafe.Pointer(&sys.CEtcHostname[0])),
		uintptr(unsafe.Pointer(&sys.CEmpty[0])), unix.MS_BIND); e != 0 {
		return -1, fmt.Errorf("bind /proc/sys/kernel/hostname over /etc/hostname: %w", e)
	}
	if _, e := rawCall(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&sys.CEmpty[0])), uintptr(unsafe.Pointer(&sys.CEtcHostname[0])),
		uintptr(unsafe.Pointer(&sys.CEmpty[0])), unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); e != 0 {
		return -1, fmt.Errorf("make /etc/hostname read-only: %w", e)
	}
	content := []byte(name)
	if _, e := rawCall(unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(&content[0])), uintptr(len(name))); e != 0 {
		return -1, fmt.Errorf("sethostname: %w", e)
	}
	pfd, e := rawCall(unix.SYS_OPENAT, sys.AtFDCWD, uintptr(unsafe.Pointer(&sys.CEtcHostname[0])), unix.O_PATH|unix.O_CLOEXEC, 0)
	if e != 0 {
		return -1, fmt.Errorf("open /etc/hostname: %w", e)
	}
	return int(pfd), nil
}

func rawCall(trap uintptr, args ...uintptr) (uintptr, unix.Errno) {
	var a [6]uintptr
	copy(a[:], args)
	r, _, e := unix.RawSyscall6(trap, a[0], a[1], a[2], a[3], a[4], a[5])
	return r, e
}

// AllowReadFile adds to the Landlock ruleset rulesetFD the right to read
// the file fd refers to (an O_PATH descriptor will do), wherever it is.
func AllowReadFile(rulesetFD, fd int) error {
	attr := unix.LandlockPathBeneathAttr{Allowed_access: ll.AccessFSReadFile, Parent_fd: int32(fd)}
	_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rulesetFD), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("landlock_add_rule: %w", e)
	}
	return nil
}

// ProbeVirtualHostname tries VirtualHostname on a thread of its own, which
// the runtime then discards (the goroutine exits locked to it): nil when
// sandlock can give the hostname through namespaces here.
func ProbeVirtualHostname() error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := VirtualHostname("sandlock-check")
		if err == nil {
			unix.Close(fd)
		}
		done <- err
	}()
	return <-done
}
