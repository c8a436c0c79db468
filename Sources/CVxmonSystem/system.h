// The plain system calls Swift cannot make directly, as static inline shims: GNU-only declarations
// (Swift's Glibc module is built without _GNU_SOURCE), unions (ifreq, epoll_event), variadic calls
// (prctl). No library to link, and nothing of libbpf: the live modules that need these run without it.
// Every shim is prefixed vxmon_shim_ so call sites show where a function comes from.
#pragma once
#include <spawn.h>
#include <linux/sched.h>
#include <linux/types.h>
#include <errno.h>
#include <sys/prctl.h>
#include <net/if.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

// ---- processes -----------------------------------------------------------------------------------

/// glibc (2.34+) declares posix_spawn_file_actions_addclosefrom_np only with _GNU_SOURCE.
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *, int);

/// Closes every descriptor >= `from` in the spawned child: for daemons whose runtime (dispatch, NIO)
/// opens descriptors before the program's own code could close inherited ones.
static inline int vxmon_shim_spawn_closefrom(posix_spawn_file_actions_t *actions, int from)
{
	return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

// ---- namespaces ----------------------------------------------------------------------------------

/// setns(fd, CLONE_NEWNET) for the calling thread. glibc declares setns only with _GNU_SOURCE,
/// which Swift's Glibc module is built without. Returns -1 and sets errno on failure.
static inline int vxmon_shim_setns_net(int fd)
{
	return (int)syscall(SYS_setns, fd, CLONE_NEWNET);
}

/// The name of `ifindex` in the network namespace `sock` was created in (SIOCGIFNAME).
/// `name` must hold IF_NAMESIZE bytes. Returns 0 or -errno.
static inline int vxmon_shim_ifname(int sock, unsigned int ifindex, char *name)
{
	struct ifreq r;

	memset(&r, 0, sizeof(r));
	r.ifr_ifindex = (int)ifindex;
	if (ioctl(sock, SIOCGIFNAME, &r) < 0)
		return -errno;
	memcpy(name, r.ifr_name, IF_NAMESIZE);
	name[IF_NAMESIZE - 1] = 0;
	return 0;
}

/// 1 if `path` is a mounted BPF filesystem (statfs f_type == BPF_FS_MAGIC), else 0.
static inline int vxmon_shim_is_bpffs(const char *path)
{
	struct statfs fs;

	return statfs(path, &fs) == 0 && (unsigned long)fs.f_type == 0xcafe4a11UL;
}

// ---- epoll (struct epoll_event is packed on x86-64) ---------------------------------------------

/// epoll_ctl(ADD) with a 64-bit tag. Returns 0 or -errno.
static inline int vxmon_shim_epoll_add(int epfd, int fd, __u32 events, __u64 tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = tag;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/// epoll_ctl(MOD): new events for `fd`, with its 64-bit tag. Returns 0 or -errno.
static inline int vxmon_shim_epoll_mod(int epfd, int fd, __u32 events, __u64 tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = tag;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

/// epoll_wait into parallel arrays of tags and event masks. Returns the count or -errno.
static inline int vxmon_shim_epoll_wait(int epfd, __u64 *tags, __u32 *events, int max, int timeout_ms)
{
	struct epoll_event evs[32];
	int n, i;

	if (max > 32)
		max = 32;
	n = epoll_wait(epfd, evs, max, timeout_ms);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		tags[i] = evs[i].data.u64;
		events[i] = evs[i].events;
	}
	return n;
}

// ---- UDP flood (the live benchmark) ---------------------------------------------------------------

/// struct mmsghdr, declared here because glibc declares it only with _GNU_SOURCE.
struct vxmon_shim_mmsghdr {
	struct msghdr msg_hdr;
	unsigned int msg_len;
};

/// Asks the kernel to send `sig` to this process when its parent dies (prctl is variadic, so Swift
/// cannot call it directly). Returns 0 or -errno.
static inline int vxmon_shim_set_parent_death_signal(int sig)
{
	return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

/// Pins the calling thread to CPU `cpu` (sched_setaffinity through the raw syscall: the CPU_SET
/// macros need _GNU_SOURCE). Returns 0 or -errno.
static inline int vxmon_shim_pin_to_cpu(int cpu)
{
	unsigned long mask[16];

	if (cpu < 0 || cpu >= (int)(8 * sizeof(mask)))
		return -EINVAL;
	memset(mask, 0, sizeof(mask));
	mask[cpu / (8 * sizeof(mask[0]))] = 1UL << (cpu % (8 * sizeof(mask[0])));
	return syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask) < 0 ? -errno : 0;
}

/// Sends `count` (at most 64) copies of `payload` on the connected socket `fd` with one
/// sendmmsg(2). Returns the number of datagrams sent or -errno.
static inline int vxmon_shim_send_batch(int fd, const void *payload, size_t len, int count)
{
	struct vxmon_shim_mmsghdr msgs[64];
	struct iovec iov;
	int i;
	long n;

	if (count > 64)
		count = 64;
	iov.iov_base = (void *)payload;
	iov.iov_len = len;
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < count; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	n = syscall(SYS_sendmmsg, fd, msgs, (unsigned int)count, 0);
	return n < 0 ? -errno : (int)n;
}
