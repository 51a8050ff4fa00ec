package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/confine"
	"github.com/sandlock/sandlock/policy"
	"golang.org/x/sys/unix"
)

// The spawn helper starts the command of a library user's sandbox.
//
// sandlock's CLI confines a thread of its own and forks the command from
// it (Options.InProcess). A library cannot do that inside somebody
// else's program: from the moment a thread carries the filter, its raw
// syscalls can wait for a supervisor worker (the fork's clone; under a
// memory limit, the runtime's own heap growth, made while it holds the heap
// lock), and a worker needs a scheduler slot (P) to answer. In a busy host
// every P can be held by goroutines spinning, waiting for that heap lock or
// for a stop-the-world, all of which wait for the confined thread: a
// deadlock no timeout undoes. So Start forks a helper — the host's own
// binary again, entered through this package's init — that confines its
// main thread, hands its listener back over a socket and execs the command
// in place: the helper's process is the command's. Only the helper's
// runtime ever waits on the supervisor, and the host's scheduler is free to
// run the workers that answer it. The price is one Go runtime start
// (about 2 ms here), paid by library users only.
//
// The protocol, over a stream socketpair (the helper's end is its fd 3):
// the host writes the JSON helperSpec and shuts its side down; the helper
// answers with msgListener carrying the listener (SCM_RIGHTS) once its
// filter is on, then either execs (its end is close-on-exec: the host reads
// end-of-file) or reports msgExecErr with the errno, or msgErr with a text
// for anything else, and exits.
const (
	helperEnv    = "SANDLOCK_SPAWN_FD"
	helperFD     = 3
	msgListener  = 'L'
	msgExecErr   = 'X'
	msgErr       = 'E'
	helperMaxLen = 64 << 20
)

// helperSpec is what the host tells the helper.
type helperSpec struct {
	Policy *policy.Policy
	Path   string
	Argv   []string
	Env    []string
	// Name is the sandbox's name, its hostname inside.
	Name string
	// HostnameBySupervisor is Options.HostnameBySupervisor.
	HostnameBySupervisor bool
}

func init() {
	if v := os.Getenv(helperEnv); v != "" {
		// The main goroutine keeps the main thread: that thread is
		// confined and execs the command.
		runtime.LockOSThread()
		debug.SetGCPercent(-1) // the helper lives for milliseconds
		fd, err := strconv.Atoi(v)
		if err != nil {
			os.Exit(exitHelper)
		}
		runHelper(fd)
	}
}

// exitHelper is the helper's status when it could not start the command
// (the host has been told why, or is gone).
const exitHelper = 127

// runHelper confines the calling thread as the host asked and execs the
// command; it returns only by exiting.
func runHelper(sock int) {
	unix.CloseOnExec(sock)
	fail := func(kind byte, msg []byte) {
		unix.Write(sock, append([]byte{kind}, msg...))
		os.Exit(exitHelper)
	}
	var spec helperSpec
	if err := readSpec(sock, &spec); err != nil {
		fail(msgErr, []byte(err.Error()))
	}
	p := spec.Policy
	arch, err := bpfprog.Native()
	if err != nil {
		fail(msgErr, []byte(err.Error()))
	}
	filters, err := bpfprog.Filters(arch, filterOptions(p))
	if err != nil {
		fail(msgErr, []byte(err.Error()))
	}
	rs, err := buildRuleset(p)
	if err != nil {
		fail(msgErr, []byte(err.Error()))
	}
	if !spec.HostnameBySupervisor {
		// The helper's main thread is locked (package init) and execs the
		// command: its namespaces become the command's.
		nsFilters, err := namespaceFilters(arch, p)
		if err != nil {
			fail(msgErr, []byte(err.Error()))
		}
		if nsFilters != nil && virtualHostname(spec.Name, rs.FD) {
			filters = nsFilters
		}
	}
	if cpus := cpuSet(p); cpus != nil {
		if err := unix.SchedSetaffinity(0, cpus); err != nil {
			fail(msgErr, []byte("sched_setaffinity: "+err.Error()))
		}
	}
	// Everything the helper may have inherited beyond its stdio and the
	// socket stays out of the command.
	unix.CloseRange(helperFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	argv0, err := syscall.BytePtrFromString(spec.Path)
	if err != nil {
		fail(msgExecErr, errnoBytes(unix.EINVAL))
	}
	argv, err := syscall.SlicePtrFromStrings(spec.Argv)
	if err != nil {
		fail(msgExecErr, errnoBytes(unix.EINVAL))
	}
	envv, err := syscall.SlicePtrFromStrings(spec.Env)
	if err != nil {
		fail(msgExecErr, errnoBytes(unix.EINVAL))
	}
	var dir *byte
	if p.Cwd != "" {
		if dir, err = syscall.BytePtrFromString(p.Cwd); err != nil {
			fail(msgErr, []byte("--cwd: "+err.Error()))
		}
	}
	// From the filter's installation until the host has the listener, a
	// notified syscall of this thread would wait for a supervisor that
	// cannot start: under --max-memory a heap or stack growth is one (an
	// mmap). So the hand-over is prepared here and made with raw syscalls,
	// and the stack is grown beforehand.
	h := newHandover(sock)
	growStack()
	_, err = confine.ConfineThread(confine.ThreadSpec{Ruleset: rs, Filters: filters, Listener: !p.NoSupervisor},
		func(l int) error {
			if l < 0 {
				return nil
			}
			if e := h.send(l); e != 0 {
				return fmt.Errorf("hand over the listener: %w", e)
			}
			return nil
		})
	if err != nil {
		fail(msgErr, []byte(err.Error()))
	}
	if p.MaxOpenFiles > 0 {
		// Last: the helper's own descriptors (the runtime's, the
		// listener) must not count against it.
		lim := unix.Rlimit{Cur: uint64(p.MaxOpenFiles), Max: uint64(p.MaxOpenFiles)}
		if _, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, uintptr(unsafePointer(&lim)), 0, 0, 0); e != 0 {
			fail(msgErr, []byte("setrlimit(RLIMIT_NOFILE): "+e.Error()))
		}
	}
	if dir != nil {
		if _, _, e := unix.RawSyscall(unix.SYS_CHDIR, uintptr(unsafePointer(dir)), 0, 0); e != 0 {
			fail(msgErr, []byte(fmt.Sprintf("--cwd: %s: %v", p.Cwd, e)))
		}
	}
	_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafePointer(argv0)),
		uintptr(unsafePointer(&argv[0])), uintptr(unsafePointer(&envv[0])))
	fail(msgExecErr, errnoBytes(e))
}

// handover sends the listener to the host: a message prepared before the
// filter, filled and sent without allocating or entering the runtime.
type handover struct {
	sock int
	msg  [1]byte
	oob  []byte
	iov  unix.Iovec
	hdr  unix.Msghdr
}

func newHandover(sock int) *handover {
	h := &handover{sock: sock, msg: [1]byte{msgListener}, oob: unix.UnixRights(0)}
	h.iov.Base = &h.msg[0]
	h.iov.SetLen(1)
	h.hdr.Iov = &h.iov
	h.hdr.SetIovlen(1)
	h.hdr.Control = &h.oob[0]
	h.hdr.SetControllen(len(h.oob))
	return h
}

// send passes fd and closes it.
func (h *handover) send(fd int) syscall.Errno {
	*(*int32)(unsafePointer(&h.oob[unix.CmsgLen(0)])) = int32(fd)
	_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(h.sock), uintptr(unsafePointer(&h.hdr)), 0)
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return e
}

// growStack makes the goroutine's stack large enough for what runs after
// the filter (the collector is off, so it is never shrunk back).
//
//go:noinline
func growStack() byte {
	var b [64 << 10]byte
	return b[len(b)-1] + b[0]
}

func errnoBytes(e syscall.Errno) []byte {
	return binary.LittleEndian.AppendUint32(nil, uint32(e))
}

// readSpec reads the host's JSON up to end-of-file.
func readSpec(sock int, spec *helperSpec) error {
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := unix.Read(sock, chunk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		if n == 0 {
			break
		}
		if buf = append(buf, chunk[:n]...); len(buf) > helperMaxLen {
			return errors.New("read spec: too long")
		}
	}
	if err := json.Unmarshal(buf, spec); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if spec.Policy == nil || spec.Path == "" || len(spec.Argv) == 0 {
		return errors.New("read spec: incomplete")
	}
	return nil
}

// forker is the one thread every helper is forked from. A child's
// parent-death signal follows the thread that forked it, not the process;
// this thread never exits, so the signal means what it says: sandlock died.
var forker struct {
	once sync.Once
	jobs chan func()
}

func onForker(f func()) {
	forker.once.Do(func() {
		forker.jobs = make(chan func())
		go func() {
			runtime.LockOSThread() // for good: the thread must live on
			for job := range forker.jobs {
				job()
			}
		}()
	})
	done := make(chan struct{})
	forker.jobs <- func() { f(); close(done) }
	<-done
}

// helperStart forks the helper, serves the listener it hands back, and
// returns the command's pid and pidfd once it has exec'd. A start that fails
// leaves nothing running.
func (sb *Sandbox) helperStart(spec *helperSpec, files []uintptr) (pid, pidfd int, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("socketpair: %w", err)
	}
	host, child := pair[0], pair[1]
	defer unix.Close(host)
	msg, err := json.Marshal(spec)
	if err != nil {
		unix.Close(child)
		return 0, -1, fmt.Errorf("spawn helper: %w", err)
	}
	pidfd = -1
	attr := &syscall.ProcAttr{
		Env:   []string{helperEnv + "=" + strconv.Itoa(helperFD), "GOGC=off"},
		Files: append(files[:3:3], uintptr(child)),
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, PidFD: &pidfd},
	}
	p := spec.Policy
	if p.Interactive && isTerminal(files[0]) {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	onForker(func() { pid, err = syscall.ForkExec("/proc/self/exe", []string{"sandlock-spawn"}, attr) })
	unix.Close(child)
	if err != nil {
		return 0, -1, fmt.Errorf("start the spawn helper: %w", err)
	}
	listener := -1
	abort := func(err error) (int, int, error) {
		killReap(pidfd)
		if listener >= 0 {
			unix.Close(listener)
		}
		return 0, -1, err
	}
	if sb.sup != nil {
		// Before the listener is served: the helper's first notification
		// finds it registered. And before the helper has the spec: once it
		// carries the filter, another sandbox of this program adopting
		// orphans would take it for one, were it not known as a root.
		sb.sup.RegisterRoot(pid)
	}
	if err := writeAll(host, msg); err != nil {
		return abort(fmt.Errorf("spawn helper: %w", err))
	}
	unix.Shutdown(host, unix.SHUT_WR)
	// The stream is parsed as it comes: a message may arrive split or
	// joined with the next.
	var got []byte
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(host, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return abort(fmt.Errorf("spawn helper: %w", err))
		}
		if fds := parseRights(oob[:oobn]); len(fds) > 0 {
			if len(fds) != 1 || listener != -1 || p.NoSupervisor {
				for _, fd := range fds {
					unix.Close(fd)
				}
				return abort(errors.New("spawn helper: unexpected descriptors"))
			}
			listener = fds[0]
			if err := sb.sup.Start(listener); err != nil {
				listener = -2 // Start's failure leaves it to Stop
				return abort(err)
			}
			listener = -2 // the supervisor owns it now
		}
		got = append(got, buf[:n]...)
		for len(got) > 0 && got[0] == msgListener {
			got = got[1:]
		}
		if n > 0 {
			continue
		}
		// End of file: the helper exec'd the command or failed.
		switch {
		case len(got) == 0 && (p.NoSupervisor || listener == -2):
			return pid, pidfd, nil
		case len(got) == 0:
			return abort(errors.New("spawn helper: exited without a listener"))
		case got[0] == msgExecErr && len(got) == 5:
			return abort(&ExecError{Path: spec.Path, Err: syscall.Errno(binary.LittleEndian.Uint32(got[1:]))})
		case got[0] == msgErr:
			return abort(errors.New(string(got[1:])))
		}
		return abort(fmt.Errorf("spawn helper: bad message %q", got))
	}
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		f, _ := unix.ParseUnixRights(&m)
		fds = append(fds, f...)
	}
	return fds
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
