#pragma once
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
