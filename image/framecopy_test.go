package image

import (
	"os"
	"path/filepath"
	"testing"

	"berth/mmapfs"
)

// TestCopyLimit: an unpack copies frames up to the table's largest, but
// never more than zstd's bound for its largest decoded frame allows (a
// hostile table's 1 GiB frame of 4 KiB gets no 1 GiB buffer), and none
// from a mapping that cannot copy.
func TestCopyLimit(t *testing.T) {
	dir := t.TempDir()
	big, small := filepath.Join(dir, "big"), filepath.Join(dir, "small")
	os.WriteFile(big, make([]byte, 1<<20), 0o644)
	os.WriteFile(small, make([]byte, 100), 0o644) // read into memory
	frames := func(sizes ...uint32) *mmapfs.SeekTable {
		st := &mmapfs.SeekTable{}
		for i := 0; i < len(sizes); i += 2 {
			st.Frames = append(st.Frames, mmapfs.Frame{CSize: sizes[i], DSize: sizes[i+1]})
		}
		return st
	}
	cases := []struct {
		name  string
		file  string
		table *mmapfs.SeekTable
		want  int64
	}{
		{"the largest frame", big, frames(1500, 4<<20, 2<<20, 4<<20, 10, 100), 2 << 20},
		{"incompressible, at the bound", big, frames(4<<20+4<<12+1024, 4<<20), 4<<20 + 4<<12 + 1024},
		{"past the bound", big, frames(4<<20+4<<12+1025, 4<<20), 4<<20 + 4<<12 + 1024},
		{"hostile", big, frames(1<<30, 4096), 4096 + 16 + 1024},
		{"no copies", small, frames(1500, 4<<20), 0},
	}
	for _, c := range cases {
		m, err := mmapfs.Map(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := copyLimit(m, c.table); got != c.want {
			t.Errorf("%s: copyLimit = %d, want %d", c.name, got, c.want)
		}
		m.Close()
	}
}
