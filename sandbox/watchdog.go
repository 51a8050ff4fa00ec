package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The watchdog kills the sandbox if sandlock itself dies, even by SIGKILL.
//
// The command's parent-death signal covers a sandbox of one process. Once
// the sandbox forks, sandlock starts a small shell in a session of its own
// (so terminal signals do not reach it) that reads, from a pipe only
// sandlock writes, the process group of every session and group the sandbox
// creates (the supervisor sees each setsid and setpgid before it happens).
// When the pipe reaches end-of-file without the word "clean" — sandlock is
// gone — it kills every one of those groups. A sandboxed process cannot
// leave them: creating a new group is a notified syscall, and without a
// supervisor it fails.
const watchdogScript = `trap '' INT HUP TERM QUIT TSTP TTIN TTOU PIPE
g=
while IFS= read -r l; do
  case $l in clean) exit 0;; esac
  g="$g $l"
done
for p in $g; do kill -KILL "-$p" 2>/dev/null; done
exit 0
`

type watchdog struct {
	pid  int
	mu   sync.Mutex
	w    *os.File
	sent map[int]bool
}

func startWatchdog() (*watchdog, error) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("watchdog pipe: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, err
	}
	defer null.Close()
	pid, err := syscall.ForkExec(sh, []string{"sandlock-watchdog", "-c", watchdogScript}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/usr/bin:/bin"},
		Files: []uintptr{uintptr(p[0]), null.Fd(), null.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	unix.Close(p[0])
	if err != nil {
		unix.Close(p[1])
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &watchdog{pid: pid, w: os.NewFile(uintptr(p[1]), "watchdog"), sent: map[int]bool{}}, nil
}

// add tells the watchdog about process group g.
func (d *watchdog) add(g int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w == nil || d.sent[g] {
		return
	}
	d.sent[g] = true
	d.w.Write([]byte(strconv.Itoa(g) + "\n"))
}

// clean tells the watchdog to exit without killing anything.
func (d *watchdog) clean() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w != nil {
		d.w.Write([]byte("clean\n"))
		d.w.Close()
		d.w = nil
	}
}

// release ends the watchdog without it killing anything and reaps it.
func (d *watchdog) release() {
	d.clean()
	var ws unix.WaitStatus
	unix.Wait4(d.pid, &ws, 0, nil)
}
