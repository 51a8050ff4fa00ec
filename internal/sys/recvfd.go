package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RecvFD receives one descriptor sent over sock with SCM_RIGHTS, with a
// message of one byte; flags are recvmsg's (MSG_CMSG_CLOEXEC is added).
func RecvFD(sock, flags int) (int, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		_, oobn, _, _, err := unix.Recvmsg(sock, b[:], oob, flags|unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return -1, err
		}
		var fds []int
		for i := range msgs {
			f, _ := unix.ParseUnixRights(&msgs[i])
			fds = append(fds, f...)
		}
		if len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return -1, fmt.Errorf("%d descriptors received, want 1", len(fds))
		}
		return fds[0], nil
	}
}
