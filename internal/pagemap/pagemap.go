// Package pagemap tells which pages of a process's address space are
// present, mapped to a page of memory (/proc/PID/pagemap, bit 63). The
// benchmarks use it to see what the kernel maps around a fault.
package pagemap

import (
	"encoding/binary"
	"fmt"
	"os"
)

// Present returns the addresses of the present pages among those holding
// [start, end) in pid's address space.
func Present(pid int, start, end uint64) ([]uint64, error) {
	page := uint64(os.Getpagesize())
	start &^= page - 1
	if end <= start {
		return nil, nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, (end-start+page-1)/page*8)
	if _, err := f.ReadAt(buf, int64(start/page*8)); err != nil {
		return nil, fmt.Errorf("pagemap of %#x-%#x: %w", start, end, err)
	}
	var present []uint64
	for i := 0; i < len(buf); i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
			present = append(present, start+uint64(i/8)*page)
		}
	}
	return present, nil
}
