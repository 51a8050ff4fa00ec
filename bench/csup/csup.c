/*
 * csup: the smallest seccomp user-notification supervisor, in C, for
 * comparison only (it is not part of sandlock, which is pure Go). It runs
 * CMD under a filter that notifies the calls MODE names and answers every
 * notification with CONTINUE from one thread blocking in
 * SECCOMP_IOCTL_NOTIF_RECV with SYNC_WAKE_UP: the kernel's own cost of a
 * notification on this machine, without any Go runtime.
 *
 *   gcc -O2 -o csup bench/csup/csup.c
 *   ./csup fork CMD...        vfork and clone (what -P needs)
 *   ./csup fork+mmap CMD...   also mmap with PROT_WRITE (about what -m needs)
 *   ./csup openat CMD...      openat (the supervisor's hostname path)
 *
 * README (Performance, "Where the time goes") quotes its figures.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif

static void sendfd(int s, int fd) {
	char buf[CMSG_SPACE(sizeof(int))] = {0}, c = 'x';
	struct iovec io = {&c, 1};
	struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	sendmsg(s, &m, 0);
}

static int recvfd(int s) {
	char buf[CMSG_SPACE(sizeof(int))], c;
	struct iovec io = {&c, 1};
	struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
	int fd;
	if (recvmsg(s, &m, 0) <= 0)
		return -1;
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
	return fd;
}

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define NOTIFY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF)
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: csup fork|fork+mmap|openat CMD [ARGS...]\n");
		return 2;
	}
	struct sock_filter fork_f[] = {
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 1),
		NOTIFY,
		ALLOW,
	};
	struct sock_filter mmap_f[] = {
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 2 /* PROT_WRITE */, 0, 1),
		NOTIFY,
		ALLOW,
	};
	struct sock_filter openat_f[] = {
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 1),
		NOTIFY,
		ALLOW,
	};
	struct sock_fprog prog;
	if (!strcmp(argv[1], "fork"))
		prog = (struct sock_fprog){sizeof fork_f / sizeof fork_f[0], fork_f};
	else if (!strcmp(argv[1], "fork+mmap"))
		prog = (struct sock_fprog){sizeof mmap_f / sizeof mmap_f[0], mmap_f};
	else if (!strcmp(argv[1], "openat"))
		prog = (struct sock_fprog){sizeof openat_f / sizeof openat_f[0], openat_f};
	else {
		fprintf(stderr, "csup: %s: unknown mode\n", argv[1]);
		return 2;
	}
	int sp[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		int fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (fd < 0) {
			perror("seccomp");
			_exit(125);
		}
		sendfd(sp[1], fd);
		close(fd);
		char c;
		read(sp[1], &c, 1);
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	int fd = recvfd(sp[0]);
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0) < 0)
		perror("csup: SYNC_WAKE_UP");
	write(sp[0], "x", 1);
	struct seccomp_notif n;
	struct seccomp_notif_resp r;
	for (;;) {
		memset(&n, 0, sizeof n);
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
			break; /* every user of the filter is gone */
		memset(&r, 0, sizeof r);
		r.id = n.id;
		r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
