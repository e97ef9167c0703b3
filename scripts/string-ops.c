// SPDX-License-Identifier: GPL-2.0
/*
 * string-ops.c - what clearing 472 bytes and copying 4 KiB cost with each
 * x86 instruction form, in nanoseconds per operation, to compare the host
 * with the VM (Documentation/benchmarks.rst, "String instructions under
 * emulation"):
 *   gcc -O2 -static -o /tmp/string-ops scripts/string-ops.c && /tmp/string-ops
 *   KDIR=<bench kernel> scripts/vm.sh /tmp/string-ops
 * (add VM_QEMU_OPTS="-cpu max,erms=off,..." for make bench's CPU model; the
 * instructions are explicit, so only the kernel's choice changes with it).
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static char clr[472] __attribute__((aligned(64)));
static char dst[4096] __attribute__((aligned(4096))), src[4096] __attribute__((aligned(4096)));

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
	int n = 200000, m = 50000;
	double t[7];

	t[0] = now();
	for (int i = 0; i < n; i++) {
		void *d = clr;
		size_t c = sizeof(clr);
		asm volatile("rep stosb" : "+D"(d), "+c"(c) : "a"(0) : "memory");
	}
	t[1] = now();
	for (int i = 0; i < n; i++) {
		volatile uint64_t *p = (volatile uint64_t *)clr;
		for (int k = 0; k < 59; k++)
			p[k] = 0;
	}
	t[2] = now();
	for (int i = 0; i < n; i++) {
		void *d = clr;
		size_t c = sizeof(clr) / 8;
		asm volatile("rep stosq" : "+D"(d), "+c"(c) : "a"(0) : "memory");
	}
	t[3] = now();
	for (int i = 0; i < m; i++) {
		void *d = dst;
		const void *s = src;
		size_t c = 4096;
		asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
	}
	t[4] = now();
	for (int i = 0; i < m; i++) {
		void *d = dst;
		const void *s = src;
		size_t c = 512;
		asm volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
	}
	t[5] = now();
	for (int i = 0; i < m; i++) {
		volatile uint64_t *d = (volatile uint64_t *)dst;
		const uint64_t *s = (const uint64_t *)src;
		for (int k = 0; k < 512; k += 4) {
			d[k] = s[k];
			d[k + 1] = s[k + 1];
			d[k + 2] = s[k + 2];
			d[k + 3] = s[k + 3];
		}
	}
	t[6] = now();
	printf("472 B: rep stosb %.0f ns, 59 movq %.0f ns, rep stosq %.0f ns\n",
	       (t[1] - t[0]) / n * 1e9, (t[2] - t[1]) / n * 1e9, (t[3] - t[2]) / n * 1e9);
	printf("4096 B copy: rep movsb %.0f ns, rep movsq %.0f ns, movq x4 loop %.0f ns\n",
	       (t[4] - t[3]) / m * 1e9, (t[5] - t[4]) / m * 1e9, (t[6] - t[5]) / m * 1e9);
	return 0;
}
