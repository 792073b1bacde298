// Package hugeheap shortens the start of a short-lived berth where a
// fresh page is expensive, before any other package's initialiser runs.
//
// A CLI berth (run, exec, version, image …) lives a few milliseconds and
// on the way touches about 260 fresh pages of heap and faults in its code
// 64 KiB at a time, another 110 faults. On the virtual machines berth is
// measured on, each fresh 4 KiB page costs 12-13 µs (the host backs the
// guest's memory page by page) and each fault on the code about 7 µs,
// while a whole 2 MiB huge page costs 130-200 µs: the faults were a
// quarter to a third of `berth version` and of `berth run /bin/true`.
// So init:
//
//  1. collapses the 2 MiB around the heap's first object into one huge
//     page (MADV_COLLAPSE, Linux 6.1), copying the pages the runtime has
//     touched so far, and marks the next 2 MiB, untouched yet, to become
//     one at its first fault (MADV_HUGEPAGE). Go 1.26 starts the heap at
//     a random page of the first 4 MiB it maps and maps the next 4 MiB
//     only when the heap reaches them, with an mmap that replaces what
//     was marked: when the first object lies in the upper half of those
//     4 MiB (half of the starts), the mark is lost and the heap's growth
//     beyond them faults page by page (measured: 270 to 430 faults for
//     `berth run` in 38 % of runs instead of about 245, 0.7 to 2.5 ms
//     more CPU; see bench/README.md);
//  2. maps berth's code and read-only data in one call
//     (MADV_POPULATE_READ, Linux 5.14) rather than a fault per 64 KiB.
//
// Both are hints: a kernel without them, or with transparent huge pages
// set to "never", answers EINVAL and nothing changes. The cost is
// memory: a `berth run` that waits on its container keeps 3.4 MiB more
// resident (11.6 MiB against 8.3 on amd64): 1.5 MiB of heap, and 1.9 MiB
// of its binary's pages, which are the page cache's and shared with every
// other berth, so they cost page tables only. And the first run
// from a disk that has not cached the whole binary reads the rest of it
// once. Neither step is taken by the processes whose memory is counted
// for long: PID 1, of the machine or of a container (berth's container
// init and tiny init), and `berth boot` run by hand; nor by berth run as
// the kernel's modprobe, of which the kernel may run 50 at once.
//
// The package imports nothing, so it is initialised right after the
// runtime: Go initialises, in import-path order, each package whose
// imports are done.
package hugeheap
