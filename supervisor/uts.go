package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"
	"unsafe"

	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

const etcHostname = "/etc/hostname"

// prepareHostname builds what uname answers inside the sandbox; the file
// /etc/hostname shows is made on first use (hostFile).
func (s *Supervisor) prepareHostname(name string) error {
	if err := unix.Uname(&s.uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	s.uts.Nodename = [65]byte{}
	copy(s.uts.Nodename[:64], name)
	s.hostName = []byte(name)
	return nil
}

// hostFile returns a sealed memfd holding the hostname and a newline.
func (s *Supervisor) hostFile() (int, error) {
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	if s.hostFD >= 0 {
		return s.hostFD, nil
	}
	fd, err := unix.MemfdCreate("hostname", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.Write(fd, append(append([]byte{}, s.hostName...), '\n')); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("write hostname memfd: %w", err)
	}
	unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
	s.hostFD = fd
	return fd, nil
}

func (s *Supervisor) closeHostname() {
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	if s.hostFD >= 0 {
		unix.Close(s.hostFD)
		s.hostFD = -1
	}
}

// uname answers on the process's behalf with the sandbox's name as
// nodename.
func (w *worker) uname(p *proc) {
	if w.s.hostName == nil {
		return
	}
	b := (*[unsafe.Sizeof(unix.Utsname{})]byte)(unsafe.Pointer(&w.s.uts))
	if err := w.writeMem(w.n.Data.Args[0], b[:]); err != nil {
		w.fail(unix.EFAULT)
		return
	}
	w.value(0)
}

// open gives a read-only open of /etc/hostname a file holding the
// sandbox's name, whether or not /etc is readable. Every other open
// continues: that decision is not a security one (Landlock checks the real
// open in the kernel), so a path rewritten by another thread after it was
// read can at worst open the real file, which Landlock governs.
func (w *worker) open(p *proc) {
	s := w.s
	if s.hostName == nil {
		return
	}
	a := &w.n.Data.Args
	nr := int(w.n.Data.Nr)
	dirfd, addr, flags := int64(unix.AT_FDCWD), a[0], a[1]
	if nr != s.nrOpen {
		dirfd, addr, flags = int64(int32(a[0])), a[1], a[2]
	}
	pathb, err := w.readString(addr)
	if err != nil || !bytes.HasSuffix(pathb, []byte("hostname")) {
		return
	}
	if nr == s.nrOpenat2 {
		// struct open_how starts with the 64-bit flags.
		var how [8]byte
		if err := w.readMem(a[2], how[:]); err != nil {
			return
		}
		flags = *(*uint64)(unsafe.Pointer(&how[0]))
	}
	if flags&(unix.O_WRONLY|unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_PATH|unix.O_DIRECTORY) != 0 {
		return
	}
	w.spare() // resolving a relative path and injecting an fd are slow
	target := string(pathb)
	if !path.IsAbs(target) {
		base, err := w.baseDir(int32(w.n.Pid), dirfd)
		if err != nil {
			return
		}
		target = path.Join(base, target)
	}
	if path.Clean(target) != etcHostname || !sys.NotifIDValid(s.listener, w.n.ID) {
		return
	}
	hfd, err := s.hostFile()
	if err != nil {
		return
	}
	src, err := unix.Open("/proc/self/fd/"+strconv.Itoa(hfd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(src)
	add := sys.SeccompNotifAddfd{ID: w.n.ID, Flags: sys.AddfdFlagSend, Srcfd: uint32(src)}
	if flags&unix.O_CLOEXEC != 0 {
		add.NewfdFlags = unix.O_CLOEXEC
	}
	if _, err := sys.NotifAddfd(s.listener, &add); err == nil {
		w.sent = true
	}
}

// baseDir returns the directory a relative path of tid is resolved from.
func (w *worker) baseDir(tid int32, dirfd int64) (string, error) {
	leaf := "cwd"
	if dirfd != unix.AT_FDCWD {
		leaf = "fd/" + strconv.FormatInt(dirfd, 10)
	}
	return os.Readlink("/proc/" + strconv.Itoa(int(tid)) + "/" + leaf) // slow path only
}
