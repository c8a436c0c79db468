// The libbpf boundary as Swift sees it: libbpf's own headers plus the static inline shims for what
// Swift cannot express of it (va_list printing, the raw perf_event_attr); the shims of plain system
// calls are CVxmonSystem's. Every shim is prefixed vxmon_shim_ so call sites show where a function
// comes from.
#pragma once
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/pkt_cls.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

// ---- libbpf logging ------------------------------------------------------------------------------

static inline int vxmon_shim_print_warnings(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_WARN)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static inline int vxmon_shim_print_all(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

/// Routes libbpf's log to stderr: warnings (and errors, which libbpf logs as warnings) only, or
/// everything including debug output when `debug` is non-zero.
static inline void vxmon_shim_set_print(int debug)
{
	libbpf_set_print(debug ? vxmon_shim_print_all : vxmon_shim_print_warnings);
}

// ---- perf buffer with batched wakeups -------------------------------------------------------------

/// perf_buffer__new_raw with the attributes libbpf's perf_buffer__new uses (software BPF output
/// events, one sample per output) plus a kernel timestamp per sample (PERF_SAMPLE_TIME, so the
/// rings of several nodes can be merged in time order, and events dated) and batched wakeups:
/// every `wakeup_events` samples, or, when it is 0, when `wakeup_bytes` bytes are pending in a
/// CPU's ring (a watermark: the reader is expected to drain the rings on a timer as well).
/// libbpf 1.1's perf_buffer_opts cannot express either. A sample record is: perf_event_header,
/// u64 time, u32 size, data.
///
/// The time is CLOCK_BOOTTIME (use_clockid), taken when the program calls bpf_perf_event_output:
/// the clock of the ring buffer's records. Without use_clockid perf stamps samples with
/// perf_clock() (local_clock(), the scheduler clock), which no user-space clock reads, so it could
/// not be turned into wall-clock time. BOOTTIME is not NMI-safe in the kernel, which perf allows
/// for software events such as these (PERF_PMU_CAP_NO_NMI). Returns NULL and sets errno on failure.
static inline struct perf_buffer *vxmon_shim_perf_buffer_new(int map_fd, size_t page_cnt,
							      __u32 wakeup_events, __u32 wakeup_bytes,
							      perf_buffer_event_fn event_cb, void *ctx)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_BPF_OUTPUT;
	attr.sample_type = PERF_SAMPLE_TIME | PERF_SAMPLE_RAW;
	attr.sample_period = 1;
	attr.use_clockid = 1;
	attr.clockid = CLOCK_BOOTTIME;
	if (wakeup_events) {
		attr.wakeup_events = wakeup_events;
	} else {
		attr.watermark = 1;
		attr.wakeup_watermark = wakeup_bytes ? wakeup_bytes : 1;
	}
	return perf_buffer__new_raw(map_fd, page_cnt, &attr, event_cb, ctx, NULL);
}
