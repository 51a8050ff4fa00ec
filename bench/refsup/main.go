// Command refsup is the minimal reference supervisor of the notification
// benchmark: a filter that sends mmap to user space and allows everything
// else, and one goroutine blocking in SECCOMP_IOCTL_NOTIF_RECV (with
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) that answers every notification with
// CONTINUE. sandlock's round trip is measured against it in the same run.
//
//	refsup CMD [ARGS...]
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

func init() {
	// The main thread is confined and forks the command; the collector
	// stays off so that no stop-the-world waits on its notified syscalls.
	runtime.LockOSThread()
	debug.SetGCPercent(-1)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: refsup CMD [ARGS...]")
		os.Exit(2)
	}
	arch, err := bpfprog.Native()
	if err != nil {
		fail(err)
	}
	mmapNr, _ := arch.Nr("mmap")
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: bpfprog.OffNr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(mmapNr), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActNotify)},
		{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActAllow)},
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail(err)
	}
	l, err := sys.SeccompSetFilter(sys.FilterFlagNewListener, filter)
	if err != nil {
		fail(err)
	}
	// REFSUP_NO_SYNC=1 leaves SYNC_WAKE_UP off, to measure what it saves.
	if os.Getenv("REFSUP_NO_SYNC") == "" {
		if err := sys.NotifSetFlags(l, sys.UserNotifFdSyncWakeUp); err != nil {
			fail(fmt.Errorf("SYNC_WAKE_UP: %w", err))
		}
	}
	go serve(l)
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		fail(err)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	os.Exit(ws.ExitStatus())
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
