// Command testprog runs inside sandboxes in sandlock's tests: each
// subcommand probes one behaviour and prints a line the test checks.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testprog SUBCOMMAND [ARGS]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "probe":
		probe()
	case "sleep":
		d, _ := time.ParseDuration(arg(args, 0, "10s"))
		time.Sleep(d)
	case "forkn":
		forkN(atoi(arg(args, 0, "10")), arg(args, 1, "2s"))
	case "forkloop":
		forkLoop(atoi(arg(args, 0, "1000")))
	case "threads":
		threads(atoi(arg(args, 0, "50")))
	case "alloc":
		alloc(atoi(arg(args, 0, "32")), arg(args, 1, "mmap"))
	case "exit":
		os.Exit(atoi(arg(args, 0, "0")))
	default:
		fmt.Fprintln(os.Stderr, "testprog: unknown subcommand", os.Args[1])
		os.Exit(2)
	}
}

func arg(a []string, i int, def string) string {
	if i < len(a) {
		return a[i]
	}
	return def
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprog: bad number", s)
		os.Exit(2)
	}
	return n
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	return unix.ErrnoName(e)
}

// probe tries what a sandbox must refuse and prints {name: errno} as JSON.
func probe() {
	res := map[string]string{}
	try := func(name string, nr uintptr, a ...uintptr) {
		var v [6]uintptr
		copy(v[:], a)
		_, _, e := unix.RawSyscall6(nr, v[0], v[1], v[2], v[3], v[4], v[5])
		res[name] = errnoName(e)
	}
	runtime.LockOSThread()
	try("unshare", unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	try("unshare-ns", unix.SYS_UNSHARE, unix.CLONE_NEWNS)
	try("setns", unix.SYS_SETNS, 0, 0)
	src, tgt := []byte("none\x00"), []byte("/tmp\x00")
	try("mount", unix.SYS_MOUNT, uintptr(unsafe.Pointer(&src[0])), uintptr(unsafe.Pointer(&tgt[0])), uintptr(unsafe.Pointer(&src[0])), 0, 0)
	try("ptrace", unix.SYS_PTRACE, unix.PTRACE_TRACEME)
	try("bpf", unix.SYS_BPF, 0, 0, 0)
	try("keyctl", unix.SYS_KEYCTL, 0)
	try("perf_event_open", unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0)
	var params [120]byte
	try("io_uring_setup", unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])))
	// clone3 with CLONE_NEWUSER: struct clone_args starts with flags.
	var cargs [88]byte
	*(*uint64)(unsafe.Pointer(&cargs[0])) = unix.CLONE_NEWUSER
	try("clone3-newuser", unix.SYS_CLONE3, uintptr(unsafe.Pointer(&cargs[0])), 88)
	// clone with CLONE_NEWUSER|CLONE_THREAD is invalid if the filter lets it by.
	try("clone-newuser", unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_THREAD|unix.CLONE_VM|unix.CLONE_SIGHAND)
	try("userfaultfd", unix.SYS_USERFAULTFD, 0)
	try("personality", unix.SYS_PERSONALITY, 0xffffffff)
	try("socket-raw", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	try("ioctl-tiocsti", unix.SYS_IOCTL, 0, unix.TIOCSTI, 0)
	status, _ := os.ReadFile("/proc/self/status")
	res["status"] = string(status)
	json.NewEncoder(os.Stdout).Encode(res)
}

// forkN starts n children that sleep for d, and reports how many started.
func forkN(n int, d string) {
	ok, fail := 0, 0
	var errs []string
	var cmds []*exec.Cmd
	for i := 0; i < n; i++ {
		c := exec.Command("/proc/self/exe", "sleep", d)
		if err := c.Start(); err != nil {
			fail++
			errs = append(errs, err.Error())
			continue
		}
		ok++
		cmds = append(cmds, c)
	}
	fmt.Printf("started %d failed %d\n", ok, fail)
	if len(errs) > 0 {
		fmt.Printf("error %s\n", errs[0])
	}
	for _, c := range cmds {
		c.Process.Kill()
		c.Wait()
	}
}

// forkLoop runs n children one after the other.
func forkLoop(n int) {
	failed := 0
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			failed++
			continue
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		if ws.ExitStatus() != 0 {
			failed++
		}
	}
	fmt.Printf("ran %d failed %d\n", n, failed)
}

// threads starts n OS threads and reports how many ran.
func threads(n int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	tids := map[int]bool{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			<-start
			mu.Lock()
			tids[unix.Gettid()] = true
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}()
	}
	close(start)
	wg.Wait()
	fmt.Printf("threads %d\n", len(tids))
}

// alloc maps and touches mb MiB: in one mapping ("mmap") or in 64 KiB pieces
// ("small", like many small mallocs).
func alloc(mb int, mode string) {
	total := mb << 20
	touch := func(b []byte) {
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
	}
	switch mode {
	case "mmap":
		b, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Println("mmap failed:", err)
			os.Exit(1)
		}
		touch(b)
	case "small":
		for done := 0; done < total; done += 64 << 10 {
			b, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				fmt.Println("mmap failed:", err)
				os.Exit(1)
			}
			touch(b)
		}
	default:
		fmt.Fprintln(os.Stderr, "testprog: alloc mode mmap|small")
		os.Exit(2)
	}
	fmt.Printf("allocated %d MiB\n", mb)
}
