package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/sandlock/sandlock/supervisor"
	"golang.org/x/sys/unix"
)

// The watchdog kills the sandbox if sandlock itself dies, even by SIGKILL.
//
// The command's parent-death signal covers a sandbox of one process. Once
// the sandbox forks, sandlock starts a watchdog: its own binary again, in a
// session of its own (terminal signals do not reach it), holding one end of
// a socket and the supervisor's mirror, a table of the live processes in
// shared memory (supervisor.Mirror) that costs the supervisor no syscall
// per process. When the socket reaches end-of-file without the word "clean"
// — sandlock is gone — the watchdog opens a pidfd for every process the
// mirror lists, keeps those whose identity matches (a pid reused meanwhile
// is left alone), collects all of their descendants and kills them all. The
// set cannot grow meanwhile: with the supervisor gone its listener is
// closed, so every fork fails with ENOSYS.
//
// The watchdog is entered through this package's init (watchdogEnv), so any
// program that imports sandbox can be its own watchdog.
const (
	watchdogEnv  = "SANDLOCK_WATCHDOG_FD"
	watchdogName = "sandlock-watchdog"
	msgClean     = 'c'
	msgReady     = 'r'
)

func init() {
	if v := os.Getenv(watchdogEnv); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil {
			os.Exit(2)
		}
		os.Exit(runWatchdog(fd, fd+1))
	}
}

// runWatchdog is the watchdog process's main loop: sock is its end of the
// socket, mirror the supervisor's table.
func runWatchdog(sock, mirrorFD int) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	size := supervisor.MirrorSlots * int(unsafe.Sizeof(supervisor.MirrorEntry{}))
	b, err := unix.Mmap(mirrorFD, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 2
	}
	entries := unsafe.Slice((*supervisor.MirrorEntry)(unsafe.Pointer(&b[0])), supervisor.MirrorSlots)
	unix.Write(sock, []byte{msgReady})
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(sock, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			killAll(listed(entries))
			return 0
		}
		if bytes.IndexByte(buf[:n], msgClean) >= 0 {
			return 0
		}
	}
}

// listed opens a pidfd for every process of the mirror whose identity
// still matches.
func listed(entries []supervisor.MirrorEntry) []int {
	var fds []int
	for i := range entries {
		e := &entries[i]
		pid := e.Pid.Load()
		if pid <= 0 {
			continue
		}
		fd, err := unix.PidfdOpen(int(pid), 0)
		if err != nil {
			continue
		}
		if id, ok := supervisor.Identity(fd, pid, e.ByStart.Load() != 0); !ok || id != e.Identity.Load() {
			unix.Close(fd)
			continue
		}
		fds = append(fds, fd)
	}
	return fds
}

// killAll kills every process whose pidfd the watchdog holds, and their
// descendants (collected first: a killed parent's children would be handed
// to init and lost from view).
func killAll(pidfds []int) {
	var pids []int
	for _, fd := range pidfds {
		if pid := pidfdPid(fd); pid > 0 {
			pids = append(pids, pid)
		}
	}
	seen := map[int]bool{}
	for i := 0; i < len(pids); i++ { // pids grows as descendants are found
		p := pids[i]
		if seen[p] {
			continue
		}
		seen[p] = true
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		for _, t := range tasks {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			for _, f := range bytes.Fields(b) {
				if c, err := strconv.Atoi(string(f)); err == nil {
					pids = append(pids, c)
				}
			}
		}
	}
	for _, fd := range pidfds {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
	for p := range seen {
		unix.Kill(p, unix.SIGKILL)
	}
}

// pidfdPid returns the pid a pidfd refers to, or -1 once the process has
// been reaped.
func pidfdPid(fd int) int {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Pid:")); ok {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err == nil {
				return pid
			}
		}
	}
	return -1
}

// watchdog is sandlock's end of it.
type watchdog struct {
	pid  int
	mu   sync.Mutex
	sock int // -1 once released
}

// startWatchdog starts the watchdog on the supervisor's mirror and waits
// until it listens.
func startWatchdog(mirror int) (*watchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog socket: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		return nil, err
	}
	defer null.Close()
	pid, err := syscall.ForkExec(exe, []string{watchdogName}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{watchdogEnv + "=3", "GOMAXPROCS=1", "GOGC=off"},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), uintptr(sp[1]), uintptr(mirror)},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	unix.Close(sp[1])
	if err != nil {
		unix.Close(sp[0])
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	var b [1]byte
	if n, err := unix.Read(sp[0], b[:]); n != 1 || err != nil || b[0] != msgReady {
		unix.Close(sp[0])
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		return nil, fmt.Errorf("watchdog did not start: %v", err)
	}
	return &watchdog{pid: pid, sock: sp[0]}, nil
}

// clean tells the watchdog to exit without killing anything.
func (d *watchdog) clean() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sock >= 0 {
		unix.Write(d.sock, []byte{msgClean})
		unix.Close(d.sock)
		d.sock = -1
	}
}

// release ends the watchdog without it killing anything and reaps it.
func (d *watchdog) release() {
	d.clean()
	var ws unix.WaitStatus
	unix.Wait4(d.pid, &ws, 0, nil)
}
