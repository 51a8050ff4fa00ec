// Command refsup is the minimal reference supervisor of the benchmarks: a
// filter, and one goroutine blocking in SECCOMP_IOCTL_NOTIF_RECV (with
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) that answers every notification with
// CONTINUE. sandlock is measured against it in the same run.
//
// By default the filter sends mmap to user space and allows everything else
// (the notification benchmark: one round trip). With -notify limits it is
// the very filter `sandlock run -m ... -P ...` installs (bpfprog.Filters with
// the process, signal and memory notifications): the same calls notified,
// answered by the smallest supervisor — the floor of the fork-heavy
// workloads for any supervisor that must see those calls.
//
// The command installs the filter itself, between its fork and its exec
// (internal/spawn), and hands the listener over: refsup's own threads stay
// unconfined. (It used to confine its main thread and fork from it; the Go
// runtime's own mmap on that thread, made holding its P, then waited on a
// supervisor goroutine that could not be scheduled, and a benchmark run
// hung.)
//
//	refsup [-notify mmap|limits] CMD [ARGS...]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/spawn"
	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

func init() {
	debug.SetGCPercent(-1)
}

func main() {
	notify := flag.String("notify", "mmap", "what the filter notifies: mmap, or limits (sandlock -m -P's filter)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: refsup [-notify mmap|limits] CMD [ARGS...]")
		os.Exit(2)
	}
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 {
		flag.Usage()
	}
	arch, err := bpfprog.Native()
	if err != nil {
		fail(err)
	}
	filters, err := filtersFor(arch, *notify)
	if err != nil {
		fail(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fail(err)
	}
	ch, err := spawn.Prepare(path, args, os.Environ(), &spawn.Attr{Files: []int{0, 1, 2}, LandlockFD: -1,
		Pdeathsig: syscall.SIGKILL, NoNewPrivs: true, Filters: filters, SendListener: true, ListenerSock: pair[1]})
	if err != nil {
		fail(err)
	}
	runtime.LockOSThread() // the parent-death signal follows the forking thread
	pid, pidfd, err := ch.Start()
	if err != nil {
		fail(err)
	}
	unix.Close(pidfd)
	l, err := sys.RecvFD(pair[0], unix.MSG_DONTWAIT)
	if err != nil {
		fail(fmt.Errorf("receive the listener: %w", err))
	}
	// REFSUP_NO_SYNC=1 leaves SYNC_WAKE_UP off, to measure what it saves.
	if os.Getenv("REFSUP_NO_SYNC") == "" {
		if err := sys.NotifSetFlags(l, sys.UserNotifFdSyncWakeUp); err != nil {
			fail(fmt.Errorf("SYNC_WAKE_UP: %w", err))
		}
	}
	go serve(l)
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	os.Exit(ws.ExitStatus())
}

// filtersFor returns the filters of a -notify value.
func filtersFor(arch *bpfprog.Arch, notify string) ([][]unix.SockFilter, error) {
	switch notify {
	case "mmap":
		mmapNr, _ := arch.Nr("mmap")
		return [][]unix.SockFilter{{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: bpfprog.OffNr},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(mmapNr), Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActNotify)},
			{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActAllow)},
		}}, nil
	case "limits":
		// What sandbox.filterOptions gives `sandlock run -m M -P N` when
		// the hostname's namespaces can be made (as root here).
		f, err := bpfprog.Filters(arch, bpfprog.Options{Notify: bpfprog.NotifyProcesses | bpfprog.NotifySignals | bpfprog.NotifyMemory})
		if err != nil {
			return nil, fmt.Errorf("-notify limits: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("-notify: %s: not mmap or limits", notify)
}

func serve(l int) {
	var n sys.SeccompNotif
	for {
		n = sys.SeccompNotif{}
		if err := sys.NotifRecv(l, &n); err != nil {
			if err == unix.EINTR || err == unix.ENOENT {
				continue
			}
			return
		}
		resp := sys.SeccompNotifResp{ID: n.ID, Flags: sys.UserNotifFlagContinue}
		sys.NotifSend(l, &resp)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "refsup:", err)
	os.Exit(125)
}
