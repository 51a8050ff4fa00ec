package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The watchdog kills the sandbox if sandlock itself dies, even by SIGKILL.
//
// The command's parent-death signal covers a sandbox of one process. Once
// the sandbox forks, sandlock starts a watchdog: its own binary again, in a
// session of its own (terminal signals do not reach it), which receives over
// a socket a pidfd of every process the supervisor registers. When the
// socket reaches end-of-file without the word "clean" — sandlock is gone —
// it collects every registered process that still lives and all of its
// descendants, and kills them all. The set cannot grow meanwhile: with the
// supervisor gone its listener is closed, so every fork fails with ENOSYS.
//
// The watchdog is entered through this package's init (watchdogEnv), so any
// program that imports sandbox can be its own watchdog.

const (
	watchdogEnv   = "SANDLOCK_WATCHDOG_FD"
	watchdogName  = "sandlock-watchdog"
	msgPidfds     = 'p'
	msgClean      = 'c'
	msgReady      = 'r'
	maxFDsPerSend = 64
)

func init() {
	if v := os.Getenv(watchdogEnv); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil {
			os.Exit(2)
		}
		os.Exit(runWatchdog(fd))
	}
}

// runWatchdog is the watchdog process's main loop.
func runWatchdog(sock int) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	unix.Write(sock, []byte{msgReady})
	var pidfds []int
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerSend))
	for {
		n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			killAll(pidfds)
			return 0
		}
		if bytes.IndexByte(buf[:n], msgClean) >= 0 {
			return 0
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				fds, _ := unix.ParseUnixRights(&m)
				pidfds = append(pidfds, fds...)
			}
			pidfds = pruneExited(pidfds)
		}
	}
}

// pruneExited closes the pidfds of processes that have exited.
func pruneExited(fds []int) []int {
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	if n, err := unix.Poll(pfds, 0); err != nil || n == 0 {
		return fds
	}
	live := fds[:0]
	for i, fd := range fds {
		if pfds[i].Revents != 0 {
			unix.Close(fd)
			continue
		}
		live = append(live, fd)
	}
	return live
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

// startWatchdog starts the watchdog and waits until it listens.
func startWatchdog() (*watchdog, error) {
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
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), uintptr(sp[1])},
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

// add hands the watchdog a duplicate of pidfd (the kernel duplicates it in
// transit; the caller keeps its own).
func (d *watchdog) add(pidfd int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sock < 0 {
		return
	}
	unix.Sendmsg(d.sock, []byte{msgPidfds}, unix.UnixRights(pidfd), nil, 0)
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
