// Command attacker runs inside sandboxes in sandlock's adversarial suite.
// Each subcommand is one attempt to get out; it prints one line:
//
//	escaped: DETAIL   the attempt worked
//	blocked: ERRNO    the kernel refused it (the errno says who: EACCES and
//	                  EXDEV come from Landlock, EPERM from the filter, a
//	                  dropped capability or a Landlock scope)
//
// and exits 0. The subcommands that must get the attacker killed (a foreign
// syscall ABI) run the attempt in a child and print "killed: SIGNAL" for it.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker CASE [ARGS]")
		os.Exit(2)
	}
	runtime.LockOSThread()
	a := os.Args[2:]
	f, ok := cases[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "attacker: unknown case", os.Args[1])
		os.Exit(2)
	}
	f(a)
}

var cases = map[string]func([]string){
	"read":           func(a []string) { readFile(a[0]) },
	"read-parent":    func(a []string) { readFile("/proc/" + strconv.Itoa(os.Getppid()) + "/" + a[0]) },
	"open-parent-rw": func(a []string) { openRW("/proc/" + strconv.Itoa(os.Getppid()) + "/" + a[0]) },
	"write":          func(a []string) { writeFile(a[0]) },
	"symlink-read":   symlinkRead,
	"hardlink":       hardlink,
	"rename":         rename,
	"handle":         handle,
	"io_uring":       ioUring,
	"ptrace":         ptrace,
	"vm-write":       vmWrite,
	"vm-read":        vmRead,
	"kill":           kill,
	"abstract":       abstract,
	"tiocsti":        func([]string) { ioctlTTY(unix.TIOCSTI) },
	"tioclinux":      func([]string) { ioctlTTY(unix.TIOCLINUX) },
	"namespaces":     namespaces,
	"syscalls":       privileged,
	"x32":            func([]string) { inChild("x32-child") },
	"x32-child":      x32,
	"int80":          func([]string) { inChild("int80-child") },
	"int80-child":    int80Child,
	"storm":          storm,
	"alloc":          alloc,
	"growsdown":      growsDown,
	"dontunmap":      dontUnmap,
	"busy":           busy,
}

func escaped(format string, a ...any) { fmt.Printf("escaped: "+format+"\n", a...) }

func blocked(err error) {
	var e syscall.Errno
	if ok := asErrno(err, &e); ok {
		fmt.Printf("blocked: %s\n", unix.ErrnoName(e))
		return
	}
	fmt.Printf("blocked: %v\n", err)
}

func asErrno(err error, e *syscall.Errno) bool {
	for err != nil {
		if x, ok := err.(syscall.Errno); ok {
			*e = x
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// readFile opens path and reads it.
func readFile(path string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		blocked(err)
		return
	}
	defer unix.Close(fd)
	var b [256]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		blocked(err)
		return
	}
	escaped("read %q", strings.TrimSpace(string(b[:n])))
}

func openRW(path string) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		blocked(err)
		return
	}
	unix.Close(fd)
	escaped("opened %s read-write", path)
}

// writeFile opens path for writing (creating it) and writes to it.
func writeFile(path string) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		blocked(err)
		return
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("pwned\n")); err != nil {
		blocked(err)
		return
	}
	escaped("wrote %s", path)
}

// symlinkRead makes LINK point at TARGET (from inside the sandbox) and
// reads FILE through it.
func symlinkRead(a []string) {
	target, link, file := a[0], a[1], a[2]
	if err := unix.Symlink(target, link); err != nil {
		blocked(err)
		return
	}
	readFile(link + "/" + file)
}

// hardlink links SRC to DST, then reads DST (mode "read") or writes it
// (mode "write").
func hardlink(a []string) {
	src, dst, mode := a[0], a[1], a[2]
	if err := unix.Link(src, dst); err != nil {
		blocked(err)
		return
	}
	if mode == "write" {
		writeFile(dst)
	} else {
		readFile(dst)
	}
}

// rename moves SRC to DST.
func rename(a []string) {
	if err := unix.Rename(a[0], a[1]); err != nil {
		blocked(err)
		return
	}
	escaped("renamed %s to %s", a[0], a[1])
}

// handle opens PATH by file handle, which skips path-based checks.
func handle(a []string) {
	h, mount, err := unix.NameToHandleAt(unix.AT_FDCWD, a[0], 0)
	if err != nil {
		blocked(err)
		return
	}
	mfd, err := unix.Open(mountPoint(mount, a[0]), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		mfd = unix.AT_FDCWD
	}
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
	if err != nil {
		blocked(err)
		return
	}
	var b [64]byte
	n, _ := unix.Read(fd, b[:])
	escaped("read %q by handle", strings.TrimSpace(string(b[:n])))
}

func mountPoint(int, string) string { return "/" }

// ioUring sets up a ring, which would let the sandbox issue file and
// network operations no filter sees.
func ioUring([]string) {
	var params [120]byte
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 8, uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 {
		blocked(e)
		return
	}
	unix.Close(int(fd))
	escaped("io_uring_setup gave fd %d", fd)
}

func pidArg(s string) int {
	if s == "parent" {
		return os.Getppid()
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "attacker: bad pid", s)
		os.Exit(2)
	}
	return n
}

// ptrace attaches to PID (a number, or "parent": the supervisor).
func ptrace(a []string) {
	pid := pidArg(a[0])
	if err := unix.PtraceAttach(pid); err != nil {
		blocked(err)
		return
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WALL, nil)
	unix.PtraceDetach(pid)
	escaped("attached to %d", pid)
}

// vmWrite writes into PID's memory at address 8 (never mapped): a process
// allowed to write gets EFAULT, one that is not gets EPERM.
func vmWrite(a []string) {
	pid := pidArg(a[0])
	b := []byte("x")
	_, err := unix.ProcessVMWritev(pid, []unix.Iovec{{Base: &b[0], Len: 1}}, []unix.RemoteIovec{{Base: 8, Len: 1}}, 0)
	if err == unix.EPERM || err == unix.EACCES || err == unix.ESRCH {
		blocked(err)
		return
	}
	escaped("process_vm_writev on %d reached its memory (%v)", pid, err)
}

func vmRead(a []string) {
	pid := pidArg(a[0])
	b := make([]byte, 1)
	_, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &b[0], Len: 1}}, []unix.RemoteIovec{{Base: 8, Len: 1}}, 0)
	if err == unix.EPERM || err == unix.EACCES || err == unix.ESRCH {
		blocked(err)
		return
	}
	escaped("process_vm_readv on %d reached its memory (%v)", pid, err)
}

// kill sends SIG to PID.
func kill(a []string) {
	pid := pidArg(a[0])
	sig, _ := strconv.Atoi(a[1])
	if err := unix.Kill(pid, unix.Signal(sig)); err != nil {
		blocked(err)
		return
	}
	escaped("signal %d delivered to %d", sig, pid)
}

// abstract connects to the abstract unix socket @NAME.
func abstract(a []string) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		blocked(err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + a[0]}); err != nil {
		blocked(err)
		return
	}
	escaped("connected to @%s", a[0])
}

// ioctlTTY pushes a character into the terminal on stdin (TIOCSTI), or
// asks TIOCLINUX for the console's shift state.
func ioctlTTY(req uint) {
	c := []byte{'#', 0}
	if req == unix.TIOCLINUX {
		c[0] = 6 // TIOCL_GETSHIFTSTATE
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, uintptr(req), uintptr(unsafe.Pointer(&c[0])))
	if e == unix.EPERM || e == unix.EACCES {
		blocked(e)
		return
	}
	escaped("ioctl %#x reached the terminal (%s)", req, errName(e))
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(e)
}

var nsFlags = []struct {
	name string
	flag uintptr
}{
	{"NEWUSER", unix.CLONE_NEWUSER}, {"NEWNS", unix.CLONE_NEWNS}, {"NEWPID", unix.CLONE_NEWPID},
	{"NEWNET", unix.CLONE_NEWNET}, {"NEWUTS", unix.CLONE_NEWUTS}, {"NEWIPC", unix.CLONE_NEWIPC},
	{"NEWCGROUP", unix.CLONE_NEWCGROUP}, {"NEWTIME", unix.CLONE_NEWTIME},
}

// refused reports whether errno e is a refusal by the sandbox rather than
// the kernel getting as far as the arguments.
func refused(e syscall.Errno) bool { return e == unix.EPERM || e == unix.EACCES || e == unix.ENOSYS }

// namespaces tries every way into a new or another namespace: unshare,
// clone and clone3 with each CLONE_NEW* flag, and setns. clone is given
// CLONE_THREAD without CLONE_VM, which the kernel rejects with EINVAL: if
// the filter let a namespace flag through, nothing is created.
func namespaces([]string) {
	var bad []string
	for _, f := range nsFlags {
		if _, _, e := unix.RawSyscall(unix.SYS_UNSHARE, f.flag, 0, 0); !refused(e) {
			bad = append(bad, "unshare("+f.name+"): "+errName(e))
		}
		// CLONE_NEWTIME is 0x80, inside clone's exit-signal bits: only
		// unshare and clone3 can take it.
		if _, _, e := unix.RawSyscall6(unix.SYS_CLONE, f.flag|unix.CLONE_THREAD, 0, 0, 0, 0, 0); f.flag != unix.CLONE_NEWTIME && !refused(e) {
			bad = append(bad, "clone("+f.name+"): "+errName(e))
		}
		var args [88]byte // struct clone_args, flags first; exit_signal 0
		*(*uint64)(unsafe.Pointer(&args[0])) = uint64(f.flag) | unix.CLONE_THREAD
		if _, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args[0])), 88, 0); !refused(e) {
			bad = append(bad, "clone3("+f.name+"): "+errName(e))
		}
	}
	for _, ns := range []string{"net", "mnt", "user", "pid", "uts", "ipc", "cgroup", "time"} {
		fd, err := unix.Open("/proc/self/ns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = 0 // /proc unreadable: any fd will do to reach setns
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETNS, uintptr(fd), 0, 0); !refused(e) {
			bad = append(bad, "setns("+ns+"): "+errName(e))
		}
		if fd > 0 {
			unix.Close(fd)
		}
	}
	if len(bad) > 0 {
		escaped("%s", strings.Join(bad, "; "))
		return
	}
	fmt.Println("blocked: every unshare, clone, clone3 and setns")
}

// privileged tries the syscalls of the default deny list and the ones a
// dropped capability guards, each with arguments that do no harm should it
// get through (a wrong reboot magic, the current hostname, ...).
func privileged([]string) {
	var uts unix.Utsname
	unix.Uname(&uts)
	host, domain := unix.ByteSliceToString(uts.Nodename[:]), unix.ByteSliceToString(uts.Domainname[:])
	hb, db := append([]byte(host), 0), append([]byte(domain), 0)
	dir, _ := os.MkdirTemp(os.Args[2], "x")
	node := append([]byte(dir+"/node"), 0)
	root := []byte("/\x00")
	none := []byte("none\x00")
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	var attr [128]byte
	var params [120]byte
	p := func(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
	calls := []struct {
		name string
		nr   uintptr
		a    [6]uintptr
	}{
		{"bpf", unix.SYS_BPF, [6]uintptr{0, uintptr(unsafe.Pointer(&attr[0])), 128}},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, [6]uintptr{uintptr(unsafe.Pointer(&attr[0])), 0, ^uintptr(0), ^uintptr(0), 0}},
		{"keyctl", unix.SYS_KEYCTL, [6]uintptr{0}},
		{"add_key", unix.SYS_ADD_KEY, [6]uintptr{p(none), p(none), 0, 0, ^uintptr(0)}},
		{"request_key", unix.SYS_REQUEST_KEY, [6]uintptr{p(none), p(none), 0, ^uintptr(0)}},
		{"userfaultfd", unix.SYS_USERFAULTFD, [6]uintptr{unix.O_CLOEXEC}},
		{"mount", unix.SYS_MOUNT, [6]uintptr{p(none), p(root), p(none), unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_BIND, 0}},
		{"umount2", unix.SYS_UMOUNT2, [6]uintptr{p(none), 0}},
		{"pivot_root", unix.SYS_PIVOT_ROOT, [6]uintptr{p(none), p(none)}},
		{"chroot", unix.SYS_CHROOT, [6]uintptr{p(root)}},
		{"mknod", unix.SYS_MKNODAT, [6]uintptr{uintptr(unix.AT_FDCWD & 0xffffffff), p(node), unix.S_IFCHR | 0o600, 1<<8 | 3}},
		{"swapon", unix.SYS_SWAPON, [6]uintptr{p(none), 0}},
		{"reboot", unix.SYS_REBOOT, [6]uintptr{1, 2, 3}},
		{"sethostname", unix.SYS_SETHOSTNAME, [6]uintptr{p(hb), uintptr(len(host))}},
		{"setdomainname", unix.SYS_SETDOMAINNAME, [6]uintptr{p(db), uintptr(len(domain))}},
		{"clock_settime", unix.SYS_CLOCK_SETTIME, [6]uintptr{unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts))}},
		{"kexec_load", unix.SYS_KEXEC_LOAD, [6]uintptr{0, 0, 0, 0}},
		{"init_module", unix.SYS_INIT_MODULE, [6]uintptr{0, 0, p(none)}},
		{"finit_module", unix.SYS_FINIT_MODULE, [6]uintptr{^uintptr(0), p(none), 0}},
		{"delete_module", unix.SYS_DELETE_MODULE, [6]uintptr{p(none), 0}},
		{"ioperm", unix.SYS_IOPERM, [6]uintptr{0x80, 1, 1}},
		{"iopl", unix.SYS_IOPL, [6]uintptr{3}},
		{"acct", unix.SYS_ACCT, [6]uintptr{0}},
		{"quotactl", unix.SYS_QUOTACTL, [6]uintptr{0, p(none), 0, 0}},
		{"personality", unix.SYS_PERSONALITY, [6]uintptr{0x0400000}}, // READ_IMPLIES_EXEC
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, [6]uintptr{8, uintptr(unsafe.Pointer(&params[0]))}},
		{"socket(raw)", unix.SYS_SOCKET, [6]uintptr{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP}},
		{"socket(packet)", unix.SYS_SOCKET, [6]uintptr{unix.AF_PACKET, unix.SOCK_RAW, 0}},
	}
	var bad []string
	for _, c := range calls {
		r, _, e := unix.RawSyscall6(c.nr, c.a[0], c.a[1], c.a[2], c.a[3], c.a[4], c.a[5])
		if !refused(e) {
			bad = append(bad, c.name+": "+errName(e))
			if e == 0 && (c.name == "userfaultfd" || strings.HasPrefix(c.name, "socket") || c.name == "io_uring_setup") {
				unix.Close(int(r))
			}
		}
	}
	if len(bad) > 0 {
		escaped("%s", strings.Join(bad, "; "))
		return
	}
	fmt.Printf("blocked: all %d\n", len(calls))
}

// inChild runs the attacker's case in a child and reports how it ended:
// a filter that kills prints "killed: SIGSYS".
func inChild(name string) {
	c := exec.Command("/proc/self/exe", name)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Printf("killed: %s\n", unix.SignalName(ws.Signal()))
			return
		}
	}
	if err != nil {
		fmt.Printf("blocked: %v\n", err)
	}
}

// x32 calls getpid through the x32 ABI (its number with bit 30 set).
func x32([]string) {
	const x32Bit = 0x40000000
	if runtime.GOARCH != "amd64" {
		fmt.Println("blocked: no x32 ABI on " + runtime.GOARCH)
		return
	}
	r, _, e := unix.RawSyscall(x32Bit|unix.SYS_GETPID, 0, 0, 0)
	if e == unix.ENOSYS {
		fmt.Println("blocked: ENOSYS (the kernel has no x32 ABI)")
		return
	}
	escaped("x32 getpid returned %d (%s)", r, errName(e))
}

// int80Child calls getpid through int 0x80, the i386 ABI.
func int80Child([]string) {
	r, ok := int80(20) // __NR_getpid on i386
	if !ok {
		fmt.Println("blocked: no int 0x80 on " + runtime.GOARCH)
		return
	}
	if int(r) < 0 && int(r) > -4096 {
		fmt.Printf("blocked: %s (the kernel has no i386 ABI)\n", unix.ErrnoName(syscall.Errno(-r)))
		return
	}
	escaped("int 0x80 getpid returned %d", r)
}

// storm makes N rounds of notified syscalls (a fork+exec, an open of
// /etc/hostname, an anonymous mmap) under a storm of SIGALRM (every 100
// us) and SIGCHLD (every child), and counts the calls that failed with
// EINTR: there must be none. Its SIGCHLD handler has SA_RESTART cleared,
// like dash's; the supervisor puts it back.
func storm(a []string) {
	n, _ := strconv.Atoi(a[0])
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGALRM, unix.SIGCHLD)
	var signals atomic.Int64
	go func() {
		for range ch {
			signals.Add(1)
		}
	}()
	const saRestart = 0x10000000
	var sa [4]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0)
	sa[1] &^= saRestart
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0)
	restart := sa[1]&saRestart != 0
	tick := unix.Timeval{Usec: 100}
	if _, err := unix.Setitimer(unix.ITIMER_REAL, unix.Itimerval{Interval: tick, Value: tick}); err != nil {
		fmt.Println("setitimer:", err)
		os.Exit(1)
	}
	eintr, other := map[string]int{}, map[string]int{}
	count := func(what string, err error) {
		if err == unix.EINTR {
			eintr[what]++
		} else if err != nil {
			other[what+": "+err.Error()]++
		}
	}
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		count("fork", err)
		if err == nil {
			var ws syscall.WaitStatus
			for {
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
					break
				}
			}
		}
		fd, err := unix.Open("/etc/hostname", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		count("open", err)
		if err == nil {
			unix.Close(fd)
		}
		b, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		count("mmap", err)
		if err == nil {
			unix.Munmap(b)
		}
	}
	unix.Setitimer(unix.ITIMER_REAL, unix.Itimerval{})
	fmt.Printf("rounds %d signals %d sigchld_restart %v eintr %v other %v\n", n, signals.Load(), restart, eintr, other)
}

// busy starts N-1 copies of itself and, like each of them, makes notified
// syscalls (mmap, open, fork+exec) without end; MARK tags the command
// lines so that a test can find them.
func busy(a []string) {
	n, _ := strconv.Atoi(a[0])
	for i := 1; i < n; i++ {
		c := exec.Command("/proc/self/exe", "busy", "1", a[1])
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fmt.Println("start:", err)
		}
	}
	fmt.Println("busy")
	for {
		b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err == nil {
			b[0] = 1
			unix.Munmap(b)
		}
		if fd, err := unix.Open("/etc/hostname", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
		if pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{}); err == nil {
			syscall.Wait4(pid, nil, 0, nil)
		}
		time.Sleep(time.Millisecond)
	}
}

// alloc maps MB MiB of anonymous memory, touches it and says so.
func alloc(a []string) {
	mb, _ := strconv.Atoi(a[0])
	b, err := unix.Mmap(-1, 0, mb<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Println("allocated", mb)
}

// growsDown maps three MAP_GROWSDOWN regions of one page and grows each by
// faults, like a stack, to MB MiB (the argument): memory made by page
// faults, each region bounded only by RLIMIT_STACK (raised to its hard
// limit first), not by the main stack's single region.
func growsDown(a []string) {
	mb, _ := strconv.Atoi(a[0])
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_STACK, &lim) == nil {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_STACK, &lim)
	}
	const regions = 3
	slot := (mb + 8) << 20 // room below each region, and its guard gap
	// A reservation finds free address space; it is then unmapped and the
	// regions placed at the top of each slot. The slice stays a view of it.
	b, err := unix.Mmap(-1, 0, regions*slot, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		fmt.Println("reserve:", err)
		os.Exit(1)
	}
	if err := unix.MunmapPtr(unsafe.Pointer(&b[0]), uintptr(len(b))); err != nil {
		fmt.Println("munmap:", err)
		os.Exit(1)
	}
	grown := 0
	for k := 1; k <= regions; k++ {
		top := k*slot - 4096
		if _, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&b[top]), 4096, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_GROWSDOWN); err != nil {
			blocked(err)
			return
		}
		for i := top; i > top-(mb<<20); i -= 4096 {
			b[i] = 1
		}
		grown += mb
	}
	escaped("grew %d MiB by faults", grown)
}

// dontUnmap maps MB MiB (the argument), touches it, then three times moves
// its pages elsewhere with mremap(MREMAP_DONTUNMAP), which leaves the old
// region mapped (empty, writable), and touches the old region again: four
// times MB of memory from one mapping's charge.
func dontUnmap(a []string) {
	mb, _ := strconv.Atoi(a[0])
	n := mb << 20
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	touch := func() {
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
	}
	touch()
	held := mb
	for k := 0; k < 3; k++ {
		if _, _, e := unix.Syscall6(unix.SYS_MREMAP, uintptr(unsafe.Pointer(&b[0])), uintptr(n), uintptr(n),
			unix.MREMAP_MAYMOVE|unix.MREMAP_DONTUNMAP, 0, 0); e != 0 {
			blocked(e)
			return
		}
		touch()
		held += mb
	}
	escaped("holding %d MiB from one mapping of %d", held, mb)
}
